"""Chat completions for `/v1/chat/completions` and the playground: find the instance that
serves the requested model for this organization, forward the request, and meter the
tokens on the ledger.

Metering: ceil((prompt x input rate + completion x output rate) / 1M) micro-dollars per
request, from the base model's catalog rates, posted once under `infer:<request id>`.
"""

from __future__ import annotations

import json
import math
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from django.db import transaction

from ecolink.accounts.models import Organization
from ecolink.api.errors import ApiError
from ecolink.billing.models import LedgerEntry
from ecolink.billing.services import ledger_post
from ecolink.catalog.models import BaseModel
from ecolink.registry.backends import AdapterNotLoaded, BackendError, backend_for
from ecolink.registry.models import Deployment, ModelInstance, RegisteredAdapter
from ecolink.registry.services import deployment_reattach, running_instance

MICROS_PER_MILLION_TOKENS = 1_000_000
# OpenAI's own parameters that are passed through to the instance; anything else is dropped.
PASSED_THROUGH = ("max_tokens", "max_completion_tokens", "temperature", "top_p", "stop", "seed")


# A request the API answers with an OpenAI-shaped error (status, message, type, code, param).
CompletionError = ApiError


@dataclass
class Route:
    """Where a model id is served: the instance, the name it knows it by, and the rates."""

    model: str  # what the caller asked for; answers carry it back
    instance: ModelInstance
    served_name: str
    base_model: BaseModel
    deployment: Deployment | None = None


def not_found(model: str) -> CompletionError:
    return CompletionError(
        404,
        f"The model `{model}` does not exist or is not deployed, or you do not have access to it.",
        code="model_not_found",
        param="model",
    )


def route_for(*, organization_id: int, model: str) -> Route:
    """The route for a deployed fine-tuned model of this organization, or for a base model
    with a running instance; 404 otherwise (another org's model looks the same as none)."""
    if model.startswith("ft:"):
        adapter = (
            RegisteredAdapter.objects.select_related("base_model")
            .filter(model_id=model, organization_id=organization_id, deleted_at__isnull=True)
            .first()
        )
        deployment = (
            Deployment.objects.select_related("instance", "adapter")
            .filter(adapter=adapter, status=Deployment.Status.DEPLOYED)
            .first()
            if adapter
            else None
        )
        if deployment is None:
            raise not_found(model)
        if deployment.instance.status != ModelInstance.Status.RUNNING:
            _move_to_running_instance(deployment, model)
        return Route(
            model=model,
            instance=deployment.instance,
            served_name=deployment.served_name,
            base_model=adapter.base_model,
            deployment=deployment,
        )
    base = BaseModel.objects.filter(hf_id=model, allowed=True).first()
    instance = running_instance(base.pk) if base else None
    if instance is None:
        raise not_found(model)
    return Route(
        model=model, instance=instance, served_name=instance.served_model_name, base_model=base
    )


def _move_to_running_instance(deployment: Deployment, model: str) -> None:
    """The deployment's instance stopped: attach the adapter to the base's new one."""
    instance = running_instance(deployment.instance.base_model_id)
    if instance is None:
        raise CompletionError(
            503, f"The instance serving `{model}` is not running.", type="server_error"
        )
    with transaction.atomic():
        Deployment.objects.filter(pk=deployment.pk).update(instance=instance)
    deployment.instance = instance
    try:
        deployment_reattach(deployment)
    except BackendError as exc:
        raise CompletionError(
            502, f"The model instance failed: {exc}", type="server_error"
        ) from exc


def clean_request(body: Any) -> dict[str, Any]:
    """Check the request's shape; return what is forwarded (model excluded)."""
    if not isinstance(body, dict):
        raise CompletionError(400, "The body must be a JSON object.")
    if not isinstance(body.get("model"), str) or not body["model"]:
        raise CompletionError(400, "`model` is required.", param="model")
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise CompletionError(400, "`messages` must be a non-empty list.", param="messages")
    clean_messages = []
    for i, message in enumerate(messages):
        if not isinstance(message, dict) or message.get("role") not in (
            "system",
            "developer",
            "user",
            "assistant",
        ):
            raise CompletionError(
                400, f"messages[{i}] needs a role: system, user or assistant.", param="messages"
            )
        content = message.get("content")
        if isinstance(content, list):  # content parts: keep the text ones
            content = "".join(
                p.get("text", "")
                for p in content
                if isinstance(p, dict) and p.get("type") == "text"
            )
        if not isinstance(content, str):
            raise CompletionError(400, f"messages[{i}].content must be text.", param="messages")
        clean_messages.append({"role": message["role"], "content": content})
    if body.get("n") not in (None, 1):
        raise CompletionError(400, "Only n=1 is supported.", param="n")
    out: dict[str, Any] = {"messages": clean_messages}
    for name in PASSED_THROUGH:
        if body.get(name) is not None:
            out[name] = body[name]
    for name in ("max_tokens", "max_completion_tokens", "seed"):
        value = out.get(name)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
            raise CompletionError(400, f"`{name}` must be an integer.", param=name)
    for name in ("max_tokens", "max_completion_tokens"):
        if out.get(name) is not None and out[name] < 1:
            raise CompletionError(400, f"`{name}` must be at least 1.", param=name)
    for name in ("temperature", "top_p"):
        value = out.get(name)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int | float)):
            raise CompletionError(400, f"`{name}` must be a number.", param=name)
    stop = out.get("stop")
    if stop is not None and not (
        isinstance(stop, str) or (isinstance(stop, list) and all(isinstance(s, str) for s in stop))
    ):
        raise CompletionError(400, "`stop` must be a string or a list of strings.", param="stop")
    return out


def cost_micros(base_model: BaseModel, prompt_tokens: int, completion_tokens: int) -> int:
    numerator = (
        prompt_tokens * base_model.inference_input_micros_per_million
        + completion_tokens * base_model.inference_output_micros_per_million
    )
    return math.ceil(numerator / MICROS_PER_MILLION_TOKENS)


def meter(*, organization_id: int, request_id: str, route: Route, usage: dict[str, int]) -> int:
    """Charge one request's tokens, once; returns the micro-dollars charged."""
    prompt, completion = int(usage.get("prompt_tokens", 0)), int(usage.get("completion_tokens", 0))
    amount = cost_micros(route.base_model, prompt, completion)
    if amount:
        ledger_post(
            organization_id=organization_id,
            amount_micros=-amount,
            key=f"infer:{request_id}",
            kind=LedgerEntry.Kind.INFERENCE,
            description=f"Inference {route.model}: {prompt} input + {completion} output tokens",
        )
    return amount


def _gate(organization_id: int) -> None:
    balance = Organization.objects.values_list("balance_micros", flat=True).get(pk=organization_id)
    if balance <= 0:
        raise CompletionError(
            429,
            "Your balance is used up: top up to keep calling models.",
            type="insufficient_quota",
            code="insufficient_quota",
        )


def _call(route: Route, fn):
    """Run a backend call; reload the adapter once if the instance forgot it."""
    try:
        return fn()
    except AdapterNotLoaded:
        if route.deployment is None:
            raise CompletionError(
                503, f"`{route.model}` is not being served.", type="server_error"
            ) from None
        try:
            deployment_reattach(route.deployment)
            return fn()
        except BackendError as exc:
            raise CompletionError(
                502, f"The model instance failed: {exc}", type="server_error"
            ) from exc
    except BackendError as exc:
        status = 400 if exc.status == 400 else 502
        kind = "invalid_request_error" if status == 400 else "server_error"
        raise CompletionError(status, f"The model instance refused: {exc}", type=kind) from exc


def complete(*, organization_id: int, body: dict[str, Any]) -> dict[str, Any]:
    """A non-streaming chat completion in OpenAI's shape, metered."""
    payload = clean_request(body)
    route = route_for(organization_id=organization_id, model=body["model"])
    _gate(organization_id)
    payload["model"] = route.served_name
    backend = backend_for(route.instance)
    answer = _call(route, lambda: backend.chat(route.instance, payload))
    request_id = f"chatcmpl-{uuid.uuid4().hex}"
    answer.update(id=request_id, model=route.model)
    meter(
        organization_id=organization_id,
        request_id=request_id,
        route=route,
        usage=answer.get("usage") or {},
    )
    return answer


def complete_stream(*, organization_id: int, body: dict[str, Any]) -> Iterator[str]:
    """Server-sent events in OpenAI's chunk format, ending with `data: [DONE]`.

    Checks everything (model, balance, instance) before the first event, so refusals are
    plain HTTP errors; the tokens are metered when the stream ends, even if the client
    went away halfway.
    """
    payload = clean_request(body)
    route = route_for(organization_id=organization_id, model=body["model"])
    _gate(organization_id)
    payload["model"] = route.served_name
    include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
    backend = backend_for(route.instance)
    events = _call(route, lambda: backend.chat_stream(route.instance, payload))
    request_id = f"chatcmpl-{uuid.uuid4().hex}"
    return _relay(events, organization_id, request_id, route, include_usage)


def _relay(events, organization_id: int, request_id: str, route: Route, include_usage: bool):
    usage: dict[str, int] = {}
    content_chunks = 0
    try:
        for event in events:
            event.update(id=request_id, model=route.model)
            if event.get("usage") and not event.get("choices"):
                usage = event["usage"]
                if include_usage:
                    yield _sse(event)
                continue
            event.pop("usage", None)
            if any(c.get("delta", {}).get("content") for c in event.get("choices", [])):
                content_chunks += 1
            yield _sse(event)
    except BackendError as exc:
        error = {"error": {"message": f"The model instance failed: {exc}", "type": "server_error"}}
        yield _sse(error)
    finally:
        events.close()
        # A client that hung up never got the usage chunk: bill what was streamed.
        usage = usage or {"prompt_tokens": 0, "completion_tokens": content_chunks}
        meter(organization_id=organization_id, request_id=request_id, route=route, usage=usage)
    yield "data: [DONE]\n\n"


def _sse(data: dict[str, Any]) -> str:
    return f"data: {json.dumps(data)}\n\n"
