"""Export to the Hugging Face Hub against a fake Hub, and the merged-export check."""

import json
import logging

import pytest

from ecolink.api.keys import api_key_create
from ecolink.registry.export import ExportRefused, adapter_export_hub
from ecolink.registry.models import HubExport
from tests.registry.fake_hub import start_fake_hub
from worker.inference.merge import MergeMismatch, merge_and_verify, merge_lora

TOKEN = "hf_SECRETsecretSECRET123"


@pytest.fixture
def hub(monkeypatch):
    fake, server = start_fake_hub()
    monkeypatch.setenv("HF_ENDPOINT", fake.url)
    yield fake
    server.shutdown()
    server.server_close()


def assert_token_nowhere(caplog, *texts):
    for record in HubExport.objects.all():
        assert TOKEN not in json.dumps([str(getattr(record, f.name)) for f in record._meta.fields])
    assert TOKEN not in caplog.text
    for text in texts:
        assert TOKEN not in text


def test_adapter_export_pushes_adapter_card_and_manifest(hub, org, register, caplog):
    caplog.set_level(logging.DEBUG)
    adapter = register(org)

    export = adapter_export_hub(adapter=adapter, token=TOKEN, repo_id="alice/tiny-ecolink")

    assert export.status == HubExport.Status.PUSHED
    assert export.commit_url.startswith(f"{hub.url}/alice/tiny-ecolink/commit/")
    files = hub.files["alice/tiny-ecolink"]
    assert {"adapter_model.safetensors", "adapter_config.json", "README.md"} <= set(files)
    assert "base_model: ecolink/tiny-qwen2" in files["README.md"].decode()
    assert "library_name: peft" in files["README.md"].decode()
    assert json.loads(files["ecolink_manifest.json"])["model_id"] == adapter.model_id
    assert hub.repos["alice/tiny-ecolink"]["visibility"] == "private"
    # The token went only into the Authorization header of the Hub calls.
    assert all(r.headers.get("authorization") == f"Bearer {TOKEN}" for r in hub.requests)
    assert all(TOKEN.encode() not in r.body for r in hub.requests)
    assert_token_nowhere(caplog)


def test_hub_errors_are_recorded_without_the_token(hub, org, register, caplog):
    hub.fail_commit_with = (403, f"token {TOKEN} may not write here")
    adapter = register(org)

    export = adapter_export_hub(adapter=adapter, token=TOKEN, repo_id="alice/tiny-ecolink")

    assert export.status == HubExport.Status.FAILED
    assert "[redacted]" in export.error
    assert_token_nowhere(caplog)


def test_bad_requests_are_refused_before_any_call(hub, org, register):
    adapter = register(org)
    with pytest.raises(ExportRefused):
        adapter_export_hub(adapter=adapter, token="", repo_id="alice/x")
    with pytest.raises(ExportRefused):
        adapter_export_hub(adapter=adapter, token=TOKEN, repo_id="not a repo")
    assert hub.requests == []


def test_merged_export_matches_base_plus_adapter_and_is_pushed(hub, org, register, caplog):
    adapter = register(org)

    export = adapter_export_hub(adapter=adapter, token=TOKEN, repo_id="alice/merged", merged=True)

    assert export.status == HubExport.Status.PUSHED, export.error
    assert export.max_logit_diff is not None and export.max_logit_diff < 1e-3
    files = hub.files["alice/merged"]
    assert "model.safetensors" in files and "config.json" in files
    assert "adapter_config.json" not in files
    assert_token_nowhere(caplog)


def test_merge_check_equivalence_on_its_own(tiny_model_dir, org, register, tmp_path):
    adapter = register(org)

    result = merge_and_verify(tiny_model_dir, adapter.path, tmp_path / "merged")

    assert result.max_logit_diff < 1e-4
    assert (tmp_path / "merged" / "model.safetensors").is_file()


def broken_merge(base_path, adapter_path):
    """A merge that drops part of the LoRA delta, as a buggy merge would."""
    import torch

    model = merge_lora(base_path, adapter_path)
    with torch.no_grad():
        model.model.layers[0].self_attn.q_proj.weight.mul_(0.5)
    return model


def test_a_broken_merge_is_refused_and_nothing_is_written(tiny_model_dir, org, register, tmp_path):
    adapter = register(org)

    with pytest.raises(MergeMismatch):
        merge_and_verify(tiny_model_dir, adapter.path, tmp_path / "merged", merge=broken_merge)

    assert not (tmp_path / "merged").exists()


def test_a_broken_merge_is_never_pushed(hub, org, register, monkeypatch):
    import worker.inference.merge as merge

    monkeypatch.setattr(merge, "merge_lora", broken_merge)  # what the export path calls
    adapter = register(org)

    export = adapter_export_hub(adapter=adapter, token=TOKEN, repo_id="alice/merged", merged=True)

    assert export.status == HubExport.Status.REFUSED
    assert export.max_logit_diff > 1e-3
    assert hub.requests == []


def test_api_export_never_echoes_the_token(client, hub, org, register, caplog):
    adapter = register(org)
    _, plain = api_key_create(organization=org, name="t")

    response = client.post(
        "/v1/exports/hugging-face",
        data=json.dumps(
            {
                "model": adapter.model_id,
                "huggingface_repository_id": "alice/api-export",
                "huggingface_access_token": TOKEN,
            }
        ),
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Bearer {plain}",
    )

    assert response.status_code == 200
    assert response.json()["status"] == "pushed"
    assert "alice/api-export" in hub.files
    assert_token_nowhere(caplog, response.content.decode())


def test_browser_export_form(logged_in, hub, org, register, caplog):
    adapter = register(org)

    response = logged_in.post(
        f"/models/{adapter.pk}/export",
        {"repo_id": "alice/from-page", "hf_token": TOKEN},
        HTTP_HX_REQUEST="true",
    )

    assert "Exported to alice/from-page" in response.content.decode()
    assert_token_nowhere(caplog, response.content.decode())
