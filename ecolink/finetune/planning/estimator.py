"""Cost estimator: how long a fine-tune runs and what the meter will charge for it, as a range.

Pure functions. Training time comes from FLOPs over the GPU's throughput (peak TFLOP/s times
an efficiency kept per GPU type and method); fixed phases come from the GPU type's overhead
constants. Prices come from `billing.rates`, the same functions the meter charges with.
"""

import math
from dataclasses import dataclass
from fractions import Fraction

from ecolink.billing.rates import billed_minutes, minute_charge_micros

# The upper bound adds this share on the variable phases (image pull, training, evaluation).
HEADROOM = Fraction(30, 100)
# Speed-up lost to gradient synchronisation per extra device under DDP.
DDP_SCALING = 0.9
# FLOPs per parameter per token: forward 2, backward 4 when weights get gradients, 2 when
# they are frozen (only activation gradients flow through them).
FLOPS_PER_PARAM_TOKEN = {"full": 6, "lora": 4, "qlora": 4, "prompt_tuning": 4}
EVAL_FLOPS_PER_PARAM_TOKEN = 2


@dataclass(frozen=True)
class Overheads:
    image_pull_seconds: int
    model_load_seconds: int
    model_load_seconds_per_gb: int
    dataset_prep_seconds: int
    evaluation_seconds: int
    register_seconds: int


@dataclass(frozen=True)
class EstimateInput:
    parameter_count: int
    weights_bytes: int
    train_tokens: int  # tokens in one pass over the training split, after truncation
    eval_tokens: int  # tokens in the validation split
    epochs: int
    method: str
    gpu_count: int
    peak_tflops: float
    efficiency: float
    hourly_rate_micros: int
    overheads: Overheads


@dataclass(frozen=True)
class Estimate:
    phases: dict[str, int]  # seconds per phase, smooth run
    variable_seconds: int
    headroom_seconds: int
    low_seconds: int
    high_seconds: int
    low_micros: int
    high_micros: int
    minute_micros: int
    trained_tokens: int

    @property
    def micros_per_million_tokens(self) -> tuple[int, int]:
        if not self.trained_tokens:
            return (0, 0)
        per = 1_000_000 / self.trained_tokens
        return (round(self.low_micros * per), round(self.high_micros * per))


def throughput_flops(data: EstimateInput) -> float:
    scaling = 1.0 if data.gpu_count == 1 else DDP_SCALING
    return data.peak_tflops * 1e12 * data.efficiency * data.gpu_count * scaling


def training_seconds(data: EstimateInput) -> int:
    flops = FLOPS_PER_PARAM_TOKEN[data.method] * data.parameter_count * data.train_tokens
    return math.ceil(flops * data.epochs / throughput_flops(data))


def evaluation_seconds(data: EstimateInput) -> int:
    flops = EVAL_FLOPS_PER_PARAM_TOKEN * data.parameter_count * data.eval_tokens
    # One evaluation per epoch plus the final one.
    passes = data.epochs + 1
    return data.overheads.evaluation_seconds + math.ceil(flops * passes / throughput_flops(data))


def estimate_cost(data: EstimateInput) -> Estimate:
    o = data.overheads
    phases = {
        "image_pull": o.image_pull_seconds,
        "model_load": o.model_load_seconds
        + math.ceil(o.model_load_seconds_per_gb * data.weights_bytes / 1e9),
        "dataset_prep": o.dataset_prep_seconds,
        "training": training_seconds(data),
        "evaluation": evaluation_seconds(data),
        "register": o.register_seconds,
    }
    variable = phases["image_pull"] + phases["training"] + phases["evaluation"]
    headroom = math.ceil(variable * HEADROOM)
    low = sum(phases.values())
    high = low + headroom
    minute = minute_charge_micros(
        hourly_rate_micros=data.hourly_rate_micros, gpu_count=data.gpu_count
    )
    return Estimate(
        phases=phases,
        variable_seconds=variable,
        headroom_seconds=headroom,
        low_seconds=low,
        high_seconds=high,
        low_micros=billed_minutes(low) * minute,
        high_micros=billed_minutes(high) * minute,
        minute_micros=minute,
        trained_tokens=data.train_tokens * data.epochs,
    )
