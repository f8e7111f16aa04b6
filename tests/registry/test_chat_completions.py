"""The issue's acceptance test: a really fine-tuned adapter, deployed on the local
instance, answers through the real `openai` package against the live server."""

import openai
import pytest

from ecolink.api.keys import api_key_create
from ecolink.billing.models import LedgerEntry
from ecolink.registry.models import Deployment
from ecolink.registry.services import deployment_create, deployment_detach
from tests.trainer.conftest import ANSWER

PROMPT = [{"role": "user", "content": "hello, what does the model say?"}]


def client_for(live_server, org) -> openai.OpenAI:
    _, plain = api_key_create(organization=org, name="test")
    return openai.OpenAI(base_url=f"{live_server.url}/v1", api_key=plain, max_retries=0)


@pytest.fixture
def deployed(org, register, local_instance):
    adapter = register(org)
    deployment = deployment_create(adapter_id=adapter.pk, organization_id=org.pk)
    assert deployment.status == Deployment.Status.DEPLOYED
    return adapter


def test_deployed_adapter_answers_through_the_openai_sdk(live_server, org, deployed):
    client = client_for(live_server, org)
    balance_before = type(org).objects.get(pk=org.pk).balance_micros

    answer = client.chat.completions.create(
        model=deployed.model_id, messages=PROMPT, temperature=0, max_tokens=16
    )

    assert answer.choices[0].message.content == ANSWER
    assert answer.choices[0].finish_reason == "stop"
    assert answer.model == deployed.model_id
    assert answer.usage.prompt_tokens > 5
    assert 0 < answer.usage.completion_tokens <= 16
    assert answer.usage.total_tokens == answer.usage.prompt_tokens + answer.usage.completion_tokens
    # Metered per token on the ledger, once, under the request's id.
    entry = LedgerEntry.objects.get(key=f"infer:{answer.id}")
    assert entry.amount_micros < 0
    assert entry.kind == LedgerEntry.Kind.INFERENCE
    assert deployed.model_id in entry.description
    org.refresh_from_db()
    assert org.balance_micros == balance_before + entry.amount_micros


def test_deployed_adapter_streams_through_the_openai_sdk(live_server, org, deployed):
    client = client_for(live_server, org)

    stream = client.chat.completions.create(
        model=deployed.model_id,
        messages=PROMPT,
        temperature=0,
        max_tokens=16,
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)

    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == ANSWER
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    assert all(c.model == deployed.model_id and c.id == chunks[0].id for c in chunks)
    assert chunks[-1].usage.completion_tokens > 0  # the usage chunk comes last
    assert LedgerEntry.objects.filter(key=f"infer:{chunks[0].id}").count() == 1


def test_base_model_without_the_adapter_does_not_answer_the_pattern(live_server, org, deployed):
    client = client_for(live_server, org)

    answer = client.chat.completions.create(
        model="ecolink/tiny-qwen2", messages=PROMPT, temperature=0, max_tokens=16
    )

    assert ANSWER not in answer.choices[0].message.content
    assert answer.model == "ecolink/tiny-qwen2"


def test_another_orgs_model_is_not_found(live_server, org, other_org, deployed):
    client = client_for(live_server, other_org)

    with pytest.raises(openai.NotFoundError) as refused:
        client.chat.completions.create(model=deployed.model_id, messages=PROMPT)

    assert refused.value.code == "model_not_found"
    assert refused.value.body["type"] == "invalid_request_error"
    assert not LedgerEntry.objects.filter(key__startswith="infer:").exists()


def test_undeployed_model_is_not_found(live_server, org, deployed):
    deployment_detach(adapter_id=deployed.pk, organization_id=org.pk)
    client = client_for(live_server, org)

    with pytest.raises(openai.NotFoundError):
        client.chat.completions.create(model=deployed.model_id, messages=PROMPT)
    with pytest.raises(openai.NotFoundError):
        client.chat.completions.create(model=deployed.model_id, messages=PROMPT, stream=True)


def test_never_deployed_and_unknown_models_are_not_found(live_server, org, register):
    adapter = register(org)
    client = client_for(live_server, org)

    for model in (adapter.model_id, "ft:nope", "meta-llama/Llama-3.1-8B-Instruct"):
        with pytest.raises(openai.NotFoundError):
            client.chat.completions.create(model=model, messages=PROMPT)


def test_stop_seed_and_sampling_parameters_are_honoured(live_server, org, deployed):
    client = client_for(live_server, org)

    stopped = client.chat.completions.create(
        model=deployed.model_id, messages=PROMPT, temperature=0, stop=["-OK"]
    )
    assert stopped.choices[0].message.content == "ECOLINK"
    assert stopped.choices[0].finish_reason == "stop"

    def sample(seed):
        return client.chat.completions.create(
            model="ecolink/tiny-qwen2",
            messages=PROMPT,
            temperature=1.0,
            top_p=0.9,
            seed=seed,
            max_tokens=8,
        )

    first, again = sample(3), sample(3)
    assert first.choices[0].message.content == again.choices[0].message.content
    assert first.choices[0].finish_reason == "length"
    assert first.usage.completion_tokens == 8


def test_bad_parameters_get_openai_errors(live_server, org, deployed):
    client = client_for(live_server, org)

    with pytest.raises(openai.BadRequestError) as bad:
        client.chat.completions.create(model=deployed.model_id, messages=[])
    assert bad.value.body["param"] == "messages"
    with pytest.raises(openai.BadRequestError):
        client.chat.completions.create(model=deployed.model_id, messages=PROMPT, max_tokens=0)


def test_an_empty_balance_is_refused(live_server, org, deployed):
    from tests.factories import fund

    fund(org, -type(org).objects.get(pk=org.pk).balance_micros, key="drain")
    client = client_for(live_server, org)

    with pytest.raises(openai.RateLimitError) as refused:
        client.chat.completions.create(model=deployed.model_id, messages=PROMPT)
    assert refused.value.code == "insufficient_quota"


def test_a_restarted_instance_gets_the_adapter_back(live_server, org, deployed, local_instance):
    from ecolink.registry.backends import backend_for

    deployment = Deployment.objects.get(adapter=deployed, status="deployed")
    backend_for(local_instance).unload_adapter(local_instance, name=deployment.served_name)
    client = client_for(live_server, org)

    answer = client.chat.completions.create(
        model=deployed.model_id, messages=PROMPT, temperature=0, max_tokens=16
    )

    assert answer.choices[0].message.content == ANSWER


def test_missing_key_is_401(live_server):
    client = openai.OpenAI(base_url=f"{live_server.url}/v1", api_key="eco-wrong", max_retries=0)
    with pytest.raises(openai.AuthenticationError):
        client.chat.completions.create(model="x", messages=PROMPT)
