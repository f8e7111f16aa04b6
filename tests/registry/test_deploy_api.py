"""The deploy panel's actions in the browser and the same actions over the API."""

import json

import pytest
from django.urls import reverse

from ecolink.api.keys import api_key_create
from ecolink.registry.models import Deployment
from tests.registry.fake_vllm import start_fake_vllm


@pytest.fixture
def instance(catalog):
    from ecolink.catalog.models import BaseModel
    from ecolink.registry.services import instance_register

    fake, server = start_fake_vllm("ecolink/tiny-qwen2")
    yield instance_register(
        name="vllm-tiny",
        base_model=BaseModel.objects.get(hf_id="ecolink/tiny-qwen2"),
        backend="vllm",
        endpoint_url=fake.url,
    )
    server.shutdown()
    server.server_close()


def auth(org) -> dict:
    _, plain = api_key_create(organization=org, name="t")
    return {"HTTP_AUTHORIZATION": f"Bearer {plain}"}


def test_panel_deploy_and_undeploy_with_htmx(logged_in, org, register, instance):
    adapter = register(org)

    response = logged_in.post(reverse("registry:deploy", args=[adapter.pk]), HTTP_HX_REQUEST="true")
    html = response.content.decode()
    assert 'data-testid="undeploy"' in html
    assert adapter.model_id in html
    assert "client.chat.completions.create(" in html and "curl http://testserver/v1/chat" in html
    assert 'data-testid="playground"' in html

    response = logged_in.post(
        reverse("registry:undeploy", args=[adapter.pk]), HTTP_HX_REQUEST="true"
    )
    assert 'data-testid="deploy"' in response.content.decode()
    assert not Deployment.objects.filter(status__in=Deployment.LIVE).exists()


def test_deploy_without_a_running_instance_explains_why(logged_in, org, register):
    adapter = register(org)

    response = logged_in.post(reverse("registry:deploy", args=[adapter.pk]), HTTP_HX_REQUEST="true")

    assert "No instance of" in response.content.decode()
    assert not Deployment.objects.exists()


def test_another_orgs_model_is_404_in_the_browser(logged_in, other_org, register, instance):
    theirs = register(other_org)
    assert logged_in.post(reverse("registry:deploy", args=[theirs.pk])).status_code == 404
    assert logged_in.get(reverse("registry:detail", args=[theirs.pk])).status_code == 404


def test_api_deploy_list_get_and_undeploy(client, org, register, instance):
    adapter = register(org)
    headers = auth(org)

    response = client.post(
        "/v1/deployments",
        data=json.dumps({"model": adapter.model_id}),
        content_type="application/json",
        **headers,
    )
    assert response.status_code == 200
    assert response.json()["status"] == "deployed"
    listed = client.get("/v1/deployments", **headers).json()["data"]
    assert [d["model"] for d in listed] == [adapter.model_id]
    one = client.get(f"/v1/deployments/{adapter.model_id}", **headers).json()
    assert one["status"] == "deployed" and one["instance"] == "vllm-tiny"

    gone = client.delete(f"/v1/deployments/{adapter.model_id}", **headers).json()
    assert gone["deleted"] is True
    again = client.delete(f"/v1/deployments/{adapter.model_id}", **headers).json()
    assert again["deleted"] is False


def test_api_deploy_of_another_orgs_model_is_404(client, org, other_org, register, instance):
    theirs = register(other_org)
    response = client.post(
        "/v1/deployments",
        data=json.dumps({"model": theirs.model_id}),
        content_type="application/json",
        **auth(org),
    )
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "model_not_found"
    assert client.delete(f"/v1/deployments/{theirs.model_id}", **auth(org)).status_code == 404
