"""The native /api/v1/fine-tuning/ endpoints: the planner's, estimator's and quote's answers."""

import json
from urllib.parse import urlsplit

import pytest
from django.test import Client

from ecolink.finetune.models import Job, JobMetric
from ecolink.registry.models import RegisteredAdapter
from tests.finetune.factories import DatasetFactory, JobFactory

pytestmark = pytest.mark.django_db
BASE = "ecolink/tiny-qwen2"
N = "/api/v1/fine-tuning"


def post(api, url, body):
    return api.post(url, json.dumps(body), content_type="application/json")


def test_base_models_and_hardware_options(api):
    bases = api.get(f"{N}/base-models").json()["data"]
    assert BASE in [b["id"] for b in bases]
    options = api.get(f"{N}/hardware-options").json()
    cpu = next(g for g in options["gpu_types"] if g["gpu_type"] == "cpu")
    assert cpu["regions"] == [
        {
            "region": "local",
            "display_name": "Local machine",
            "total_gpus": 2,
            "in_use": 0,
            "free": 2,
        }
    ]
    assert "qlora" in options["training_methods"]


def test_requirements_give_the_planner_answer_per_gpu(api):
    response = api.get(f"{N}/models/meta-llama/Llama-3.1-8B-Instruct/requirements")
    if response.status_code == 404:  # the seeded catalog names it differently
        response = api.get(f"{N}/models/{BASE}/requirements")
    assert response.status_code == 200, response.content
    rows = response.json()["requirements"]
    assert {r["gpu_type"] for r in rows} >= {"cpu", "nvidia-t4-16gb", "nvidia-h100-80gb"}
    assert all(r["vram_required_bytes"] > 0 for r in rows)
    qlora = api.get(f"{N}/models/{BASE}/requirements", {"training_method": "qlora"}).json()
    assert {r["training_method"] for r in qlora["requirements"]} == {"qlora"}
    assert api.get(f"{N}/models/{BASE}/requirements", {"lora_r": 0}).status_code == 400


def test_validate_hardware_says_whether_it_fits_and_whether_the_region_is_free(api, org):
    answer = post(
        api, f"{N}/validate-hardware", {"model": BASE, "gpu_type": "cpu", "region": "local"}
    )
    body = answer.json()
    assert answer.status_code == 200 and body["valid"] and body["capacity"]["free"] == 2
    JobFactory.create_batch(2, organization=org, status=Job.Status.TRAINING)
    body = post(
        api, f"{N}/validate-hardware", {"model": BASE, "gpu_type": "cpu", "region": "local"}
    ).json()
    assert not body["valid"] and body["capacity"]["available"] is False
    body = post(
        api, f"{N}/validate-hardware", {"model": BASE, "gpu_type": "cpu", "gpu_count": 9}
    ).json()
    assert not body["valid"] and body["problems"]


def test_estimate_cost_is_the_wizards_range_and_creates_nothing(api, org):
    dataset = DatasetFactory(organization=org)
    response = post(
        api,
        f"{N}/estimate-cost",
        {"model": BASE, "training_file": f"file-{dataset.pk}", "gpu_type": "cpu"},
    )
    assert response.status_code == 200, response.content
    body = response.json()
    low, high = body["estimated_cost_micros"]["low"], body["estimated_cost_micros"]["high"]
    assert 0 < low <= high and body["balance_ok"] and body["blockers"] == []
    assert not Job.objects.exists()


def test_job_views_stop_logs_and_metrics(api, org):
    job = JobFactory(organization=org, status=Job.Status.QUEUED)
    JobMetric.objects.create(job=job, kind="train", step=1, loss=2.0)
    JobMetric.objects.create(job=job, kind="eval", step=1, loss=1.5, perplexity=4.4)
    listed = api.get(f"{N}/jobs", {"status": "queued"}).json()["data"]
    assert [j["id"] for j in listed] == [f"ftjob-{job.pk}"] and listed[0]["status"] == "queued"
    metrics = api.get(f"{N}/jobs/ftjob-{job.pk}/metrics").json()
    assert metrics["summary"] == {"train_loss": 2.0, "eval_loss": 1.5, "perplexity": 4.4}
    stopped = api.post(f"{N}/jobs/ftjob-{job.pk}/stop").json()
    assert stopped["status"] == "cancelled"
    logs = api.get(f"{N}/jobs/ftjob-{job.pk}/logs", {"log_type": "deployment"}).json()
    assert any("Cancelled" in line["message"] for line in logs["lines"])
    assert api.get(f"{N}/jobs/ftjob-{job.pk}/logs", {"log_type": "nope"}).status_code == 400
    stats = api.get(f"{N}/stats").json()
    assert stats["jobs"]["by_status"] == {"cancelled": 1}


def test_download_needs_a_registered_adapter_and_gives_a_signed_link(api, org, tmp_path):
    job = JobFactory(organization=org, status=Job.Status.TRAINING)
    assert api.get(f"{N}/jobs/ftjob-{job.pk}/download").status_code == 409
    Job.objects.filter(pk=job.pk).update(status=Job.Status.REGISTERED)
    RegisteredAdapter.objects.create(
        organization=org,
        job=job,
        model_id=f"ft:{BASE}:{org.slug}:{job.pk}",
        base_model=job.base_model,
        dataset=job.dataset,
        method="lora",
        path=str(tmp_path),
    )
    (tmp_path / "adapter_config.json").write_text("{}")
    response = api.get(f"{N}/jobs/ftjob-{job.pk}/download")
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["url"].startswith("http") and body["expires_in"] == 3600
    # The link itself is the credential: it downloads the archive without the key.
    archive = Client().get(urlsplit(body["url"]).path)
    assert archive.status_code == 200
    assert b"".join(archive.streaming_content if archive.streaming else [archive.content])
