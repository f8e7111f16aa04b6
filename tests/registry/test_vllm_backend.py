"""The vLLM backend against a fake vLLM server that records the calls: deploy and undeploy
use the dynamic LoRA endpoints, completions are routed by LoRA name and metered."""

from pathlib import Path

import pytest

from ecolink.billing.models import LedgerEntry
from ecolink.catalog.models import BaseModel
from ecolink.registry.completions import complete, complete_stream
from ecolink.registry.models import Deployment
from ecolink.registry.services import deployment_create, deployment_detach, instance_register
from tests.registry.fake_vllm import start_fake_vllm


@pytest.fixture
def vllm(catalog):
    fake, server = start_fake_vllm("ecolink/tiny-qwen2")
    instance = instance_register(
        name="vllm-tiny",
        base_model=BaseModel.objects.get(hf_id="ecolink/tiny-qwen2"),
        backend="vllm",
        endpoint_url=fake.url,
        max_adapters=2,
    )
    yield fake, instance
    server.shutdown()
    server.server_close()


def test_deploy_loads_the_lora_by_name_and_path(vllm, org, register):
    fake, instance = vllm
    adapter = register(org)

    deployment = deployment_create(adapter_id=adapter.pk, organization_id=org.pk)

    assert deployment.status == Deployment.Status.DEPLOYED
    assert deployment.instance == instance
    assert fake.calls == [
        (
            "POST",
            "/v1/load_lora_adapter",
            {"lora_name": deployment.served_name, "lora_path": str(Path(adapter.path).resolve())},
        )
    ]


def test_deploying_twice_is_one_deployment_and_an_already_loaded_lora_is_fine(vllm, org, register):
    fake, _ = vllm
    adapter = register(org)
    first = deployment_create(adapter_id=adapter.pk, organization_id=org.pk)

    again = deployment_create(adapter_id=adapter.pk, organization_id=org.pk)
    assert again.pk == first.pk
    assert len(fake.calls) == 1

    # A deployment stuck in `attaching` (a crash after the load) attaches again: vLLM says
    # "already loaded" (400), which counts as done.
    Deployment.objects.filter(pk=first.pk).update(status=Deployment.Status.ATTACHING)
    retried = deployment_create(adapter_id=adapter.pk, organization_id=org.pk)
    assert retried.pk == first.pk and retried.status == Deployment.Status.DEPLOYED
    assert len(fake.calls) == 2


def test_undeploy_unloads_and_a_second_undeploy_changes_nothing(vllm, org, register):
    fake, _ = vllm
    adapter = register(org)
    deployment = deployment_create(adapter_id=adapter.pk, organization_id=org.pk)

    assert deployment_detach(adapter_id=adapter.pk, organization_id=org.pk) is True
    assert deployment_detach(adapter_id=adapter.pk, organization_id=org.pk) is False

    assert fake.calls[-1] == (
        "POST",
        "/v1/unload_lora_adapter",
        {"lora_name": deployment.served_name},
    )
    assert fake.loras == {}
    deployment.refresh_from_db()
    assert deployment.status == Deployment.Status.DETACHED and deployment.detached_at


def test_a_full_instance_refuses_another_adapter(vllm, org, register):
    from ecolink.registry.services import DeployRefused

    for _ in range(2):
        a = register(org)
        deployment_create(adapter_id=a.pk, organization_id=org.pk)
    with pytest.raises(DeployRefused, match="full"):
        deployment_create(adapter_id=register(org).pk, organization_id=org.pk)


def test_completions_are_routed_by_lora_name_and_metered(vllm, org, register):
    fake, _ = vllm
    adapter = register(org)
    deployment = deployment_create(adapter_id=adapter.pk, organization_id=org.pk)

    answer = complete(
        organization_id=org.pk,
        body={
            "model": adapter.model_id,
            "messages": [{"role": "user", "content": "hi"}],
            "seed": 1,
        },
    )

    assert answer["choices"][0]["message"]["content"] == f"hello from {deployment.served_name}"
    assert answer["model"] == adapter.model_id
    sent = fake.calls[-1][2]
    assert sent["model"] == deployment.served_name and sent["seed"] == 1
    base = adapter.base_model
    expected = -(
        -(
            7 * base.inference_input_micros_per_million
            + 3 * base.inference_output_micros_per_million
        )
        // 1_000_000
    )
    assert LedgerEntry.objects.get(key=f"infer:{answer['id']}").amount_micros == -expected


def test_streaming_asks_vllm_for_usage_and_hides_it_unless_asked(vllm, org, register):
    fake, _ = vllm
    adapter = register(org)
    deployment_create(adapter_id=adapter.pk, organization_id=org.pk)
    body = {"model": adapter.model_id, "messages": [{"role": "user", "content": "hi"}]}

    events = list(complete_stream(organization_id=org.pk, body=body))

    assert fake.calls[-1][2]["stream_options"] == {"include_usage": True}
    assert events[-1] == "data: [DONE]\n\n"
    assert not any('"usage"' in e for e in events)
    assert LedgerEntry.objects.filter(key__startswith="infer:", organization=org).count() == 1


def test_an_instance_that_lost_the_adapter_gets_it_loaded_again(vllm, org, register):
    fake, _ = vllm
    adapter = register(org)
    deployment_create(adapter_id=adapter.pk, organization_id=org.pk)
    fake.loras.clear()  # vLLM restarted

    answer = complete(
        organization_id=org.pk,
        body={"model": adapter.model_id, "messages": [{"role": "user", "content": "hi"}]},
    )

    assert answer["choices"][0]["message"]["content"].startswith("hello from")
    assert [c[1] for c in fake.calls].count("/v1/load_lora_adapter") == 2
