"""The API's errors, in the body the openai SDK parses: one exception type for API code,
one mapping from a job action's refusal to a status, and the handlers every API installs."""

from django.http import Http404, JsonResponse
from ninja import NinjaAPI
from ninja.errors import AuthenticationError, HttpError, ValidationError

from ecolink.finetune.outcomes import ActionRefused

# A refused action's code → the HTTP status the API answers with (else 400).
REFUSAL_STATUS = {"insufficient_balance": 402, "capacity_unavailable": 409}


def openai_error(
    status: int, message: str, *, type: str = "invalid_request_error", code=None, param=None
) -> JsonResponse:
    """The error shape the openai SDK parses: {"error": {message, type, param, code}}."""
    return JsonResponse(
        {"error": {"message": message, "type": type, "param": param, "code": code}},
        status=status,
    )


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


def refusal_error(refused: ActionRefused, *, param: str | None = None) -> ApiError:
    """How every API surface answers an action's refusal: the same status for the same
    code, the action's own message, and the field at fault."""
    status = REFUSAL_STATUS.get(refused.code, 400)
    return ApiError(status, str(refused), code=refused.code, param=param or refused.param)


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
