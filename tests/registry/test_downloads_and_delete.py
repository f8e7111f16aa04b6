"""Signed download links to a tar.gz of adapter + manifest, and Delete."""

import io
import tarfile
import time
from pathlib import Path

import pytest
from django.urls import reverse

from ecolink.billing.models import LedgerEntry
from ecolink.finetune.models import Job
from ecolink.finetune.runconfig import job_artifacts_dir
from ecolink.registry.downloads import signed_download_url
from ecolink.registry.models import Deployment
from ecolink.registry.services import adapter_delete
from tests.registry.fake_vllm import start_fake_vllm


def test_signed_link_downloads_adapter_and_manifest(client, org, register):
    adapter = register(org)

    url = signed_download_url(adapter, expires_in=60)
    response = client.get(url)  # no login: the link is the credential

    assert response.status_code == 200
    assert response["Content-Type"] == "application/gzip"
    body = io.BytesIO(b"".join(response.streaming_content))
    with tarfile.open(fileobj=body, mode="r:gz") as archive:
        names = archive.getnames()
        root = names[0].split("/")[0]
        assert f"{root}/adapter/adapter_model.safetensors" in names
        assert f"{root}/adapter/adapter_config.json" in names
        manifest = archive.extractfile(f"{root}/manifest.json").read().decode()
        packed = archive.extractfile(f"{root}/adapter/adapter_model.safetensors").read()
    assert adapter.model_id in manifest
    assert packed == (Path(adapter.path) / "adapter_model.safetensors").read_bytes()


def test_absolute_link_for_api_answers(rf, org, register):
    adapter = register(org)
    url = signed_download_url(adapter, request=rf.get("/"))
    assert url.startswith("http://testserver/models/download/")


def test_tampered_and_expired_links_are_refused(client, org, register, monkeypatch):
    adapter = register(org)
    url = signed_download_url(adapter, expires_in=60)

    assert client.get(url[:-3] + "xyz").status_code == 404
    monkeypatch.setattr(time, "time", lambda: 10**10)
    assert client.get(url).status_code == 404


def test_browser_download_redirects_to_a_signed_link_for_members_only(
    logged_in, org, other_org, register
):
    mine, theirs = register(org), register(other_org)

    response = logged_in.get(reverse("registry:download", args=[mine.pk]))
    assert response.status_code == 302
    assert response["Location"].startswith("/models/download/")
    assert logged_in.get(reverse("registry:download", args=[theirs.pk])).status_code == 404


@pytest.fixture
def vllm_instance(catalog):
    from ecolink.catalog.models import BaseModel
    from ecolink.registry.services import instance_register

    fake, server = start_fake_vllm("ecolink/tiny-qwen2")
    yield (
        fake,
        instance_register(
            name="vllm-tiny",
            base_model=BaseModel.objects.get(hf_id="ecolink/tiny-qwen2"),
            backend="vllm",
            endpoint_url=fake.url,
        ),
    )
    server.shutdown()
    server.server_close()


def test_delete_removes_files_detaches_and_keeps_the_ledger(org, register, vllm_instance):
    from ecolink.billing.services import ledger_post
    from ecolink.registry.services import deployment_create

    fake, _ = vllm_instance
    adapter = register(org)
    job_dir = job_artifacts_dir(adapter.job_id)
    (job_dir / "checkpoints").mkdir(parents=True)
    deployment_create(adapter_id=adapter.pk, organization_id=org.pk)
    ledger_post(
        organization_id=org.pk, amount_micros=-5, key="meter:x:1", kind=LedgerEntry.Kind.METER
    )
    LedgerEntry.objects.filter(key="meter:x:1").update(job=adapter.job)
    signed = signed_download_url(adapter)

    assert adapter_delete(adapter_id=adapter.pk, organization_id=org.pk) is True
    assert adapter_delete(adapter_id=adapter.pk, organization_id=org.pk) is False

    adapter.refresh_from_db()
    assert adapter.deleted_at is not None
    assert not Path(adapter.path).exists() and not job_dir.exists()
    assert fake.loras == {}
    assert not Deployment.objects.filter(adapter=adapter, status__in=Deployment.LIVE).exists()
    assert Job.objects.get(pk=adapter.job_id).adapter_path == ""
    assert LedgerEntry.objects.filter(key="meter:x:1", job=adapter.job).exists()
    from django.test import Client

    assert Client().get(signed).status_code == 404


def test_delete_from_the_page_and_deploy_is_refused_after(logged_in, org, register):
    adapter = register(org)

    response = logged_in.post(reverse("registry:delete", args=[adapter.pk]), HTTP_HX_REQUEST="true")
    assert response.status_code == 200
    assert b'data-testid="deleted"' in response.content

    response = logged_in.post(reverse("registry:deploy", args=[adapter.pk]))
    assert response.status_code == 302
