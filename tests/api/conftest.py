import pytest

from ecolink.api.keys import api_key_create


@pytest.fixture
def api_key(org) -> str:
    _, plain = api_key_create(organization=org, name="test")
    return plain


@pytest.fixture
def api(client, api_key):
    """The Django test client, authenticated with the org's key."""
    client.defaults["HTTP_AUTHORIZATION"] = f"Bearer {api_key}"
    return client
