import math

from django.test import override_settings
from hypothesis import given, settings
from hypothesis import strategies as st

from ecolink.billing.rates import billed_minutes, minute_charge_micros
from ecolink.finetune.planning.estimator import EstimateInput, Overheads, estimate_cost

OVERHEADS = Overheads(120, 30, 4, 30, 60, 5)

inputs = st.builds(
    EstimateInput,
    parameter_count=st.integers(100_000, 80_000_000_000),
    weights_bytes=st.integers(400_000, 160_000_000_000),
    train_tokens=st.integers(1, 10_000_000_000),
    eval_tokens=st.integers(0, 1_000_000_000),
    epochs=st.integers(1, 50),
    method=st.sampled_from(["lora", "qlora", "full", "prompt_tuning"]),
    gpu_count=st.integers(1, 8),
    peak_tflops=st.floats(0.5, 1000),
    efficiency=st.floats(0.01, 0.6),
    hourly_rate_micros=st.integers(1, 10_000_000),
    overheads=st.just(OVERHEADS),
)


def replace(data: EstimateInput, **changes) -> EstimateInput:
    return EstimateInput(**{**data.__dict__, **changes})


@override_settings(BILLING_MINUTE_SECONDS=60)
@given(inputs)
def test_the_upper_bound_is_never_below_the_lower(data):
    est = estimate_cost(data)
    assert est.high_seconds >= est.low_seconds
    assert est.high_micros >= est.low_micros > 0


@override_settings(BILLING_MINUTE_SECONDS=60)
@given(inputs)
def test_the_gap_is_exactly_thirty_percent_on_the_variable_phases(data):
    est = estimate_cost(data)
    variable = est.phases["image_pull"] + est.phases["training"] + est.phases["evaluation"]
    assert est.variable_seconds == variable
    assert est.high_seconds - est.low_seconds == math.ceil(variable * 3 / 10)
    assert est.low_seconds == sum(est.phases.values())


@override_settings(BILLING_MINUTE_SECONDS=60)
@given(inputs)
def test_prices_are_the_meters_minute_charges(data):
    est = estimate_cost(data)
    minute = minute_charge_micros(
        hourly_rate_micros=data.hourly_rate_micros, gpu_count=data.gpu_count
    )
    assert est.minute_micros == minute
    assert est.low_micros == billed_minutes(est.low_seconds) * minute
    assert est.high_micros == billed_minutes(est.high_seconds) * minute


@override_settings(BILLING_MINUTE_SECONDS=60)
@settings(max_examples=200)
@given(inputs, st.integers(1, 10_000_000_000), st.integers(1, 50), st.integers(1, 10_000_000))
def test_cost_is_monotonic_in_tokens_epochs_and_gpu_price(
    data, more_tokens, more_epochs, more_rate
):
    base = estimate_cost(data)
    for bigger in (
        replace(data, train_tokens=data.train_tokens + more_tokens),
        replace(data, epochs=min(50, data.epochs + more_epochs)),
        replace(data, hourly_rate_micros=data.hourly_rate_micros + more_rate),
    ):
        est = estimate_cost(bigger)
        assert est.low_micros >= base.low_micros
        assert est.high_micros >= base.high_micros
