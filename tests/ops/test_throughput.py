"""Observed throughput: finished jobs tell the efficiency their GPU type and method really
reach; an operator previews what it does to estimates, then saves it with a reason."""

from datetime import timedelta

import pytest
from django.utils import timezone

from ecolink.catalog.models import BaseModel, GpuType, ThroughputEfficiency
from ecolink.finetune.models import Job
from ecolink.finetune.planning import estimator
from ecolink.ops import throughput
from ecolink.ops.models import AuditLog
from tests.finetune.factories import BillingSessionFactory, JobFactory

pytestmark = pytest.mark.django_db


def finished_job(org, seconds: int, charged: int, runs: int = 1, **fields) -> Job:
    job = JobFactory(
        organization=org,
        status=Job.Status.REGISTERED,
        hyperparameters={"max_seq_length": 128, "epochs": 2},
        finished_at=timezone.now(),
        trained_tokens=245_760,
        **fields,
    )
    start = timezone.now() - timedelta(hours=2)
    for run in range(1, runs + 1):
        BillingSessionFactory(
            job=job,
            run=run,
            started_at=start,
            ended_at=start + timedelta(seconds=seconds / runs),
            charged_micros=charged // runs,
        )
    return job


def test_the_observed_efficiency_makes_the_estimator_match_the_observed_time(org):
    job = finished_job(org, seconds=600, charged=100_000)
    observation = throughput.observe(job)
    assert observation is not None and 0 < observation.efficiency < 1
    redone = estimator.estimate_cost(throughput.estimate_input(job, observation.efficiency))
    assert abs(redone.low_seconds - 600) <= 2
    # Twice as slow a run observes half the efficiency.
    slow = throughput.observe(finished_job(org, seconds=1200, charged=200_000))
    compute = observation.compute_seconds
    assert slow.efficiency == pytest.approx(observation.efficiency * compute / (compute + 600))


def test_a_run_no_longer_than_its_fixed_phases_says_nothing(org):
    assert throughput.observe(finished_job(org, seconds=10, charged=10_000)) is None


def test_the_page_groups_by_gpu_type_method_and_base_model(org, operator_client):
    finished_job(org, seconds=600, charged=100_000)
    finished_job(org, seconds=900, charged=150_000, runs=2)
    page = operator_client.get("/ops/throughput/")
    [group] = page.context["groups"]
    assert (group.gpu_type.slug, group.method, len(group.observations)) == ("cpu", "lora", 2)
    tiny = BaseModel.objects.get(hf_id="ecolink/tiny-qwen2").display_name
    assert group.by_base_model[0][:2] == (tiny, 2)
    assert b"Review and update" in page.content


def test_the_review_previews_the_effect_then_saves_with_a_reason(org, operator_client):
    gpu = GpuType.objects.get(slug="cpu")
    current = ThroughputEfficiency.objects.get(gpu_type=gpu, method="lora").efficiency
    for seconds in (600, 700, 800):
        finished_job(org, seconds=seconds, charged=seconds * 170)
    url = "/ops/throughput/cpu/lora/"

    preview = operator_client.get(url)
    observed = preview.context["group"].observed
    assert preview.context["proposed"] == pytest.approx(observed)
    effects = preview.context["effects"]
    assert len(effects) == 3
    # The proposed efficiency brings the smooth-run time to within seconds of each run.
    for e in effects:
        assert e.proposed.low_seconds != e.now.low_seconds
    assert b"Estimate proposed" in preview.content
    other = operator_client.get(url, {"efficiency": "0.5"})
    assert other.context["proposed"] == 0.5
    assert ThroughputEfficiency.objects.get(gpu_type=gpu, method="lora").efficiency == current

    refused = operator_client.post(url, {"efficiency": observed, "reason": ""})
    assert refused.status_code == 200 and not AuditLog.objects.exists()
    assert ThroughputEfficiency.objects.get(gpu_type=gpu, method="lora").efficiency == current

    saved = operator_client.post(url, {"efficiency": observed, "reason": "30 days of runs"})
    assert saved.status_code == 302
    row = ThroughputEfficiency.objects.get(gpu_type=gpu, method="lora")
    assert row.efficiency == pytest.approx(observed)
    audit = AuditLog.objects.get()
    assert audit.action == "efficiency_update" and audit.before["efficiency"] == current
    assert audit.after["efficiency"] == pytest.approx(observed)
