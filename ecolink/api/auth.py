"""Bearer-key authentication and OpenAI-shaped error bodies for every API view."""

from functools import wraps

from django.http import JsonResponse
from django.views.decorators.csrf import csrf_exempt

from ecolink.api.keys import api_key_authenticate


def openai_error(
    status: int, message: str, *, type: str = "invalid_request_error", code=None, param=None
) -> JsonResponse:
    """The error shape the openai SDK parses: {"error": {message, type, param, code}}."""
    return JsonResponse(
        {"error": {"message": message, "type": type, "param": param, "code": code}},
        status=status,
    )


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
