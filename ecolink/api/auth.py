"""Bearer-key authentication for every API view."""

from functools import wraps

from django.views.decorators.csrf import csrf_exempt
from ninja.security import HttpBearer

from ecolink.api.errors import openai_error
from ecolink.api.keys import api_key_authenticate


def api_view(view):
    """Authenticate `Authorization: Bearer <key>`; sets request.api_key and
    request.organization. No session, no CSRF: the key is the credential."""

    @csrf_exempt
    @wraps(view)
    def wrapper(request, *args, **kwargs):
        header = request.headers.get("Authorization", "")
        scheme, _, plain = header.partition(" ")
        key = api_key_authenticate(plain.strip()) if scheme.lower() == "bearer" else None
        if key is None:
            return openai_error(
                401,
                "Missing or invalid API key. Send it as `Authorization: Bearer <key>`.",
                type="invalid_request_error",
                code="invalid_api_key",
            )
        request.api_key = key
        request.organization = key.organization
        return view(request, *args, **kwargs)

    return wrapper


class BearerKey(HttpBearer):
    """django-ninja's side of `api_view`: the same key check, the same request attributes."""

    def authenticate(self, request, token):
        key = api_key_authenticate(token.strip())
        if key is not None:
            request.api_key = key
            request.organization = key.organization
        return key
