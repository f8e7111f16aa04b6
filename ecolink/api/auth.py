"""Bearer-key authentication and OpenAI-shaped error bodies for every API view."""

from functools import wraps

from django.http import Http404, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from ninja import NinjaAPI
from ninja.errors import AuthenticationError, HttpError, ValidationError
from ninja.security import HttpBearer

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


class ApiError(Exception):
    """Raised by API code to answer with an OpenAI-shaped error body."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        type: str = "invalid_request_error",
        code: str | None = None,
        param: str | None = None,
    ):
        super().__init__(message)
        self.status, self.message, self.type, self.code, self.param = (
            status,
            message,
            type,
            code,
            param,
        )


def not_found(what: str, ident: str, param: str | None = None) -> ApiError:
    """Another organization's id gets the very answer a missing one gets."""
    return ApiError(404, f"No {what} found with id {ident!r}.", code="not_found", param=param)


class BearerKey(HttpBearer):
    """django-ninja's side of `api_view`: the same key check, the same request attributes."""

    def authenticate(self, request, token):
        key = api_key_authenticate(token.strip())
        if key is not None:
            request.api_key = key
            request.organization = key.organization
        return key


def _validation_message(errors: list) -> tuple[str, str | None]:
    first = errors[0] if errors else {}
    loc = [str(part) for part in first.get("loc", ()) if part not in ("body", "query", "path")]
    param = ".".join(p for p in loc if p not in ("payload", "form", "file")) or None
    message = first.get("msg", "Invalid request.")
    return (f"{param}: {message}" if param else message), param


def install_error_handlers(api: NinjaAPI) -> None:
    """Every error an API answers with has the body the openai SDK parses."""

    @api.exception_handler(ApiError)
    def api_error(request, exc: ApiError):
        return openai_error(exc.status, exc.message, type=exc.type, code=exc.code, param=exc.param)

    @api.exception_handler(AuthenticationError)
    def unauthenticated(request, exc):
        return openai_error(
            401,
            "Missing or invalid API key. Send it as `Authorization: Bearer <key>`.",
            code="invalid_api_key",
        )

    @api.exception_handler(ValidationError)
    def invalid(request, exc: ValidationError):
        message, param = _validation_message(exc.errors)
        return openai_error(400, message, param=param)

    @api.exception_handler(Http404)
    def missing(request, exc):
        return openai_error(404, str(exc) or "Not found.", code="not_found")

    @api.exception_handler(HttpError)
    def http_error(request, exc: HttpError):
        return openai_error(exc.status_code, str(exc))
