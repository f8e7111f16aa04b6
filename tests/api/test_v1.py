"""The OpenAI-compatible /v1 through Django's test client: shapes, gates and errors."""

import json

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from ecolink.api.models import ApiJobRequest
from ecolink.datasets.models import Dataset
from ecolink.finetune.models import Job
from tests.factories import fund
from tests.finetune.factories import DatasetFactory, JobFactory

pytestmark = pytest.mark.django_db
BASE = "ecolink/tiny-qwen2"


def create_job(api, **body):
    payload = {"model": BASE, "gpu_type": "cpu", "region": "local", **body}
    return api.post("/v1/fine_tuning/jobs", json.dumps(payload), content_type="application/json")


def test_a_request_without_a_key_gets_401_in_the_openai_shape(client, org):
    for url in ("/v1/files", "/v1/fine_tuning/jobs", "/v1/models", "/api/v1/fine-tuning/stats"):
        response = client.get(url)
        assert response.status_code == 401
        assert response.json()["error"]["code"] == "invalid_api_key"
    response = client.get("/v1/models", HTTP_AUTHORIZATION="Bearer eco-not-a-real-key")
    assert response.status_code == 401


def test_uploading_a_file_creates_a_dataset_queued_for_validation(
    api, org, django_capture_on_commit_callbacks
):
    upload = SimpleUploadedFile("chats.jsonl", b'{"messages": []}\n')
    with django_capture_on_commit_callbacks() as callbacks:
        response = api.post("/v1/files", {"file": upload, "purpose": "fine-tune"})
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["object"] == "file" and body["id"].startswith("file-")
    assert body["status"] == "uploaded" and body["filename"] == "chats.jsonl"
    dataset = Dataset.objects.get(pk=int(body["id"].removeprefix("file-")))
    assert dataset.organization == org
    assert len(callbacks) == 1  # the validation task


def test_a_file_with_another_purpose_is_refused(api):
    upload = SimpleUploadedFile("chats.jsonl", b"{}\n")
    response = api.post("/v1/files", {"file": upload, "purpose": "assistants"})
    assert response.status_code == 400
    assert response.json()["error"]["param"] == "purpose"


def test_files_list_pages_with_after_limit_and_has_more(api, org):
    ids = [f"file-{DatasetFactory(organization=org).pk}" for _ in range(5)]
    page = api.get("/v1/files", {"limit": 2}).json()
    assert [f["id"] for f in page["data"]] == ids[::-1][:2] and page["has_more"]
    rest = api.get("/v1/files", {"limit": 10, "after": page["data"][-1]["id"]}).json()
    assert [f["id"] for f in rest["data"]] == ids[::-1][2:] and not rest["has_more"]


def test_creating_a_job_goes_through_the_wizard_services(api, org):
    dataset = DatasetFactory(organization=org, example_count=120, token_count=5000)
    response = create_job(
        api,
        training_file=f"file-{dataset.pk}",
        hyperparameters={"n_epochs": 2, "batch_size": 8, "learning_rate_multiplier": 2},
        lora={"r": 8, "alpha": 16, "target_modules": ["q_proj", "k_proj", "v_proj"]},
        suffix="status",
        metadata={"team": "ops"},
        seed=7,
    )
    assert response.status_code == 200, response.content
    body = response.json()
    job = Job.objects.get(pk=int(body["id"].removeprefix("ftjob-")))
    assert job.organization == org and job.status == Job.Status.QUEUED
    assert job.hyperparameters["epochs"] == 2
    assert (
        job.hyperparameters["micro_batch_size"] * job.hyperparameters["gradient_accumulation"] == 8
    )
    assert job.hyperparameters["learning_rate"] == pytest.approx(4e-4)
    assert job.run_config["lora"]["target_modules"] == ["q_proj", "k_proj", "v_proj"]
    assert job.run_config["seed"] == 7
    assert body["status"] == "queued" and body["native_status"] == "queued"
    assert body["hyperparameters"] == {
        "n_epochs": 2,
        "batch_size": 8,
        "learning_rate_multiplier": 2.0,
    }
    assert body["method"]["type"] == "supervised"
    assert body["user_provided_suffix"] == "status" and body["metadata"] == {"team": "ops"}
    assert body["training_method"] == "lora" and body["gpu_type"] == "cpu"
    assert body["estimated_finish"] is not None and body["fine_tuned_model"] is None
    assert ApiJobRequest.objects.get(job=job).seed == 7


def test_training_method_qlora_is_honoured(api, org):
    dataset = DatasetFactory(organization=org, example_count=120, token_count=5000)
    response = create_job(api, training_file=f"file-{dataset.pk}", training_method="qlora")
    assert response.status_code == 200, response.content
    assert response.json()["training_method"] == "qlora"


def test_a_job_on_a_file_still_validating_is_refused_clearly(api, org):
    dataset = DatasetFactory(organization=org, status=Dataset.Status.VALIDATING)
    response = create_job(api, training_file=f"file-{dataset.pk}")
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "file_not_ready" and error["param"] == "training_file"
    assert "processed" in error["message"]
    assert not Job.objects.exists()


def test_out_of_range_hyperparameters_name_the_field(api, org):
    dataset = DatasetFactory(organization=org)
    response = create_job(api, training_file=f"file-{dataset.pk}", hyperparameters={"n_epochs": 99})
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["param"] == "hyperparameters.n_epochs"
    assert "between 1 and 50" in error["message"]


def test_a_model_off_the_allow_list_is_refused(api, org):
    from ecolink.catalog.models import BaseModel

    BaseModel.objects.filter(hf_id=BASE).update(allowed=False)
    dataset = DatasetFactory(organization=org)
    response = create_job(api, training_file=f"file-{dataset.pk}")
    assert response.status_code == 400
    assert response.json()["error"]["param"] == "model"


def test_a_balance_below_the_estimate_answers_402(api, org):
    org.refresh_from_db()
    fund(org, -org.balance_micros, key="spend")
    dataset = DatasetFactory(organization=org)
    response = create_job(api, training_file=f"file-{dataset.pk}")
    assert response.status_code == 402
    error = response.json()["error"]
    assert error["code"] == "insufficient_balance" and "top up" in error["message"]
    assert not Job.objects.exists()


def test_a_full_region_answers_409(api, org):
    JobFactory.create_batch(2, organization=org, status=Job.Status.TRAINING)  # 2 CPUs in local
    dataset = DatasetFactory(organization=org)
    response = create_job(api, training_file=f"file-{dataset.pk}")
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "capacity_unavailable"


def test_without_hardware_the_cheapest_fitting_free_gpu_is_chosen(api, org):
    dataset = DatasetFactory(organization=org)
    response = api.post(
        "/v1/fine_tuning/jobs",
        json.dumps({"model": BASE, "training_file": f"file-{dataset.pk}"}),
        content_type="application/json",
    )
    assert response.status_code == 200, response.content
    assert response.json()["gpu_type"] == "nvidia-t4-16gb"


def test_dpo_method_on_a_preference_dataset(api, org):
    dataset = DatasetFactory(organization=org, is_preference=True, format="preference")
    response = create_job(
        api,
        training_file=f"file-{dataset.pk}",
        method={"type": "dpo", "dpo": {"hyperparameters": {"beta": 0.2, "n_epochs": 1}}},
    )
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["method"]["type"] == "dpo"
    assert body["method"]["dpo"]["hyperparameters"]["beta"] == 0.2
    assert Job.objects.get().objective == "dpo"


def test_statuses_map_onto_openai_and_keep_the_native_one(api, org):
    expected = {
        Job.Status.STARTING: "running",
        Job.Status.TRAINING: "running",
        Job.Status.REGISTERED: "succeeded",
        Job.Status.PAUSED: "paused",
        Job.Status.CANCELLED: "cancelled",
        Job.Status.FAILED: "failed",
    }
    for native, openai_status in expected.items():
        job = JobFactory(organization=org, status=native, status_reason="boom")
        body = api.get(f"/v1/fine_tuning/jobs/ftjob-{job.pk}").json()
        assert (body["status"], body["native_status"]) == (openai_status, native)
        if native == Job.Status.FAILED:
            assert body["error"]["message"] == "boom"


def test_pausing_a_queued_job_is_refused_and_cancelling_it_is_immediate(api, org):
    job = JobFactory(organization=org, status=Job.Status.QUEUED)
    response = api.post(f"/v1/fine_tuning/jobs/ftjob-{job.pk}/pause")
    assert response.status_code == 400
    response = api.post(f"/v1/fine_tuning/jobs/ftjob-{job.pk}/cancel")
    assert response.status_code == 200 and response.json()["status"] == "cancelled"
    assert api.post(f"/v1/fine_tuning/jobs/ftjob-{job.pk}/cancel").status_code == 200
    assert api.post(f"/v1/fine_tuning/jobs/ftjob-{job.pk}/resume").status_code == 400


def test_resume_without_the_money_for_the_rest_answers_402(api, org):
    job = JobFactory(organization=org, status=Job.Status.PAUSED, estimate_high_micros=10**12)
    response = api.post(f"/v1/fine_tuning/jobs/ftjob-{job.pk}/resume")
    assert response.status_code == 402
    assert Job.objects.get(pk=job.pk).status == Job.Status.PAUSED


def test_models_list_has_the_bases_and_retrieve_takes_ids_with_slashes(api):
    data = api.get("/v1/models").json()["data"]
    assert BASE in [m["id"] for m in data]
    response = api.get("/v1/models/ecolink%2Ftiny-qwen2")
    assert response.status_code == 200 and response.json()["id"] == BASE
    assert api.get("/v1/models/nope").status_code == 404


def test_malformed_bodies_get_400_not_500(api):
    response = api.post("/v1/fine_tuning/jobs", "{", content_type="application/json")
    assert response.status_code == 400
    response = api.post(
        "/v1/fine_tuning/jobs", json.dumps({"model": 3}), content_type="application/json"
    )
    assert response.status_code == 400 and "error" in response.json()


@pytest.mark.parametrize("size", [200_000, 20_000])  # declared too large; past it mid-stream
def test_an_oversized_upload_is_refused_with_413_and_stores_nothing(api, settings, size):
    settings.DATASET_MAX_UPLOAD_BYTES = 1_000
    upload = SimpleUploadedFile("big.jsonl", b'{"text": "x"}\n' * (size // 14))
    response = api.post("/v1/files", {"file": upload, "purpose": "fine-tune"})
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "file_too_large"
    assert not Dataset.objects.exists()
