"""API keys: the settings page, the management commands, last-used times."""

import io
import re

import pytest
from django.core.management import call_command
from django.urls import reverse

from ecolink.api.keys import hash_key
from ecolink.api.models import ApiKey

pytestmark = pytest.mark.django_db


def test_a_key_is_shown_once_stored_hashed_and_revocable(logged_in, org):
    response = logged_in.post(reverse("apikeys:create"), {"name": "ci"}, follow=True)
    plain = re.search(r"eco-[\w-]+", response.content.decode()).group(0)
    key = ApiKey.objects.get(organization=org)
    assert key.key_hash == hash_key(plain) and plain.startswith(key.prefix)
    assert plain not in logged_in.get(reverse("apikeys:list")).content.decode()

    auth = {"HTTP_AUTHORIZATION": f"Bearer {plain}"}
    assert logged_in.get("/v1/models", **auth).status_code == 200
    key.refresh_from_db()
    assert key.last_used_at is not None
    page = logged_in.get(reverse("apikeys:list")).content.decode()
    assert key.prefix in page and "ago" in page

    logged_in.post(reverse("apikeys:revoke", args=[key.pk]))
    assert logged_in.get("/v1/models", **auth).status_code == 401


def test_another_orgs_key_cannot_be_revoked(logged_in, org, catalog):
    from ecolink.api.keys import api_key_create
    from tests.factories import OrganizationFactory

    key, _ = api_key_create(organization=OrganizationFactory(), name="theirs")
    logged_in.post(reverse("apikeys:revoke", args=[key.pk]))
    key.refresh_from_db()
    assert key.revoked_at is None


def test_create_api_key_command_prints_a_working_key(client, org):
    out = io.StringIO()
    call_command("create_api_key", "--org", org.slug, "--name", "cli", stdout=out)
    plain = out.getvalue().strip()
    assert ApiKey.objects.get(organization=org).name == "cli"
    assert client.get("/v1/models", HTTP_AUTHORIZATION=f"Bearer {plain}").status_code == 200


def test_bootstrap_demo_prints_an_api_key_on_its_own_line_and_reruns(client, settings, tmp_path):
    settings.TINY_MODEL_DIR = tmp_path / "tiny"
    for _ in range(2):
        out = io.StringIO()
        call_command("bootstrap_demo", stdout=out)
        lines = out.getvalue().splitlines()
        assert "Login: demo / ecolink-demo" in lines
        key = next(line for line in lines if line.startswith("API key: ")).split(": ", 1)[1]
        assert client.get("/v1/models", HTTP_AUTHORIZATION=f"Bearer {key}").status_code == 200
