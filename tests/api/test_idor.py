"""Every operation, as organization A with organization B's ids, answers 404; list views
show A's rows only. The operations come from the served schemas, so a new endpoint is
swept too."""

import json
from urllib.parse import quote

import pytest

from ecolink.api.keys import api_key_create
from ecolink.finetune.models import Job, JobEvent
from ecolink.registry.models import RegisteredAdapter
from tests.factories import OrganizationFactory, fund
from tests.finetune.factories import DatasetFactory, JobFactory

pytestmark = pytest.mark.django_db
SCHEMAS = ("/v1/openapi.json", "/api/v1/openapi.json")


@pytest.fixture
def other(catalog):
    """Organization B, with a file, a registered job, its events and its model."""
    org = OrganizationFactory()
    fund(org, 100_000_000)
    job = JobFactory(organization=org, status=Job.Status.REGISTERED)
    JobEvent.objects.create(job=job, kind="checkpoint", data={"step": 5, "path": "/x"})
    JobEvent.objects.create(job=job, kind="metrics", data={"step": 5, "loss": 1.0})
    adapter = RegisteredAdapter.objects.create(
        organization=org,
        job=job,
        model_id=f"ft:ecolink/tiny-qwen2:{org.slug}:{job.pk}",
        base_model=job.base_model,
        dataset=job.dataset,
        method="lora",
        path="/nonexistent",
    )
    live = JobFactory(organization=org, status=Job.Status.TRAINING)
    return {"org": org, "job": job, "live": live, "file": job.dataset, "model": adapter.model_id}


def operations(client):
    for url in SCHEMAS:
        schema = client.get(url).json()
        for path, methods in schema["paths"].items():
            for method in methods:
                yield method, path


def fill(path: str, other) -> str:
    return (
        path.replace("{file_id}", f"file-{other['file'].pk}")
        .replace("{fine_tuning_job_id}", f"ftjob-{other['live'].pk}")
        .replace("{job_id}", f"ftjob-{other['live'].pk}")
        .replace("{model}", quote(other["model"], safe=""))
    )


def test_every_operation_on_another_orgs_ids_answers_404(api, org, other):
    swept = 0
    for method, path in operations(api):
        if "{" not in path:
            continue
        url = fill(path, other)
        assert "{" not in url, f"no id of organization B for {path}"
        response = getattr(api, method)(url)
        assert response.status_code == 404, (method, path, response.content)
        assert response.json()["error"]["code"] in ("not_found", "model_not_found")
        swept += 1
    assert swept >= 15
    # B's live job was neither paused nor cancelled, B's file not deleted.
    assert Job.objects.get(pk=other["live"].pk).status == Job.Status.TRAINING
    assert type(other["file"]).objects.filter(pk=other["file"].pk).exists()


def test_another_orgs_finished_job_and_model_are_404_too(api, other):
    job = f"ftjob-{other['job'].pk}"
    for url in (
        f"/v1/fine_tuning/jobs/{job}/events",
        f"/v1/fine_tuning/jobs/{job}/checkpoints",
        f"/api/v1/fine-tuning/jobs/{job}/download",
        f"/api/v1/fine-tuning/jobs/{job}/metrics",
    ):
        assert api.get(url).status_code == 404, url


def test_creating_or_estimating_with_another_orgs_file_answers_404(api, org, other):
    mine = DatasetFactory(organization=org)
    bodies = [
        {"training_file": f"file-{other['file'].pk}"},
        {"training_file": f"file-{mine.pk}", "validation_file": f"file-{other['file'].pk}"},
    ]
    for extra in bodies:
        body = json.dumps({"model": "ecolink/tiny-qwen2", "gpu_type": "cpu", **extra})
        for url in ("/v1/fine_tuning/jobs", "/api/v1/fine-tuning/estimate-cost"):
            response = api.post(url, body, content_type="application/json")
            assert response.status_code == 404, (url, response.content)
    assert not Job.objects.filter(organization=org).exists()


def test_list_views_show_only_the_callers_rows(api, org, other):
    mine = JobFactory(organization=org)
    files = api.get("/v1/files").json()["data"]
    assert [f["id"] for f in files] == [f"file-{mine.dataset_id}"]
    jobs = api.get("/v1/fine_tuning/jobs").json()["data"]
    assert [j["id"] for j in jobs] == [f"ftjob-{mine.pk}"]
    native = api.get("/api/v1/fine-tuning/jobs").json()["data"]
    assert [j["id"] for j in native] == [f"ftjob-{mine.pk}"]
    models = [m["id"] for m in api.get("/v1/models").json()["data"]]
    assert other["model"] not in models
    stats = api.get("/api/v1/fine-tuning/stats").json()
    assert stats["jobs"]["total"] == 1 and stats["files"] == 1


def test_a_revoked_key_is_refused(client, org):
    from ecolink.api.keys import api_key_revoke

    key, plain = api_key_create(organization=org, name="old")
    assert client.get("/v1/models", HTTP_AUTHORIZATION=f"Bearer {plain}").status_code == 200
    api_key_revoke(key_id=key.pk, organization_id=org.pk)
    assert client.get("/v1/models", HTTP_AUTHORIZATION=f"Bearer {plain}").status_code == 401
