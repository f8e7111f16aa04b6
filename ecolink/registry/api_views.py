"""OpenAI-compatible endpoints of the registry: `/v1/chat/completions`, and EcoLink's
deploy, undeploy and Hub export actions under `/v1/deployments` and `/v1/exports`."""

import json

from django.http import JsonResponse, StreamingHttpResponse

from ecolink.api.auth import api_view
from ecolink.api.errors import openai_error
from ecolink.registry.completions import CompletionError, complete, complete_stream
from ecolink.registry.export import ExportRefused, adapter_export_hub
from ecolink.registry.models import Deployment, HubExport, RegisteredAdapter
from ecolink.registry.services import (
    DeployRefused,
    deployment_create,
    deployment_detach,
    live_deployment,
)


def _json_body(request) -> dict | None:
    try:
        body = json.loads(request.body or b"{}")
    except ValueError:
        return None
    return body if isinstance(body, dict) else None


def _error(exc: CompletionError) -> JsonResponse:
    return openai_error(exc.status, exc.message, type=exc.type, code=exc.code, param=exc.param)


def _not_allowed(request) -> JsonResponse:
    return openai_error(405, f"{request.method} is not allowed here.")


@api_view
def chat_completions(request):
    if request.method != "POST":
        return _not_allowed(request)
    body = _json_body(request)
    if body is None:
        return openai_error(400, "The body must be a JSON object.")
    org_id = request.organization.pk
    try:
        if body.get("stream"):
            events = complete_stream(organization_id=org_id, body=body)
            response = StreamingHttpResponse(events, content_type="text/event-stream")
            response["Cache-Control"] = "no-cache"
            response["X-Accel-Buffering"] = "no"
            return response
        return JsonResponse(complete(organization_id=org_id, body=body))
    except CompletionError as exc:
        return _error(exc)


def deployment_json(adapter: RegisteredAdapter, deployment: Deployment | None) -> dict:
    return {
        "object": "deployment",
        "model": adapter.model_id,
        "base_model": adapter.base_model.hf_id,
        "status": deployment.status if deployment else "not_deployed",
        "instance": deployment.instance.name if deployment else None,
        "deployed_at": int(deployment.deployed_at.timestamp())
        if deployment and deployment.deployed_at
        else None,
    }


def _adapter_for(request, model) -> RegisteredAdapter | None:
    if not isinstance(model, str):
        return None
    return (
        RegisteredAdapter.objects.select_related("base_model")
        .filter(model_id=model, organization=request.organization, deleted_at__isnull=True)
        .first()
    )


def _model_not_found(model) -> JsonResponse:
    return openai_error(
        404, f"The model `{model}` does not exist.", code="model_not_found", param="model"
    )


@api_view
def deployments(request):
    """GET: this organization's deployed models. POST {"model": <ft id>}: deploy it."""
    if request.method == "GET":
        rows = (
            Deployment.objects.select_related("adapter__base_model", "instance")
            .filter(organization=request.organization, status__in=Deployment.LIVE)
            .order_by("-created_at")
        )
        data = [deployment_json(d.adapter, d) for d in rows]
        return JsonResponse({"object": "list", "data": data})
    if request.method != "POST":
        return _not_allowed(request)
    body = _json_body(request) or {}
    adapter = _adapter_for(request, body.get("model"))
    if adapter is None:
        return _model_not_found(body.get("model"))
    try:
        deployment = deployment_create(
            adapter_id=adapter.pk, organization_id=request.organization.pk
        )
    except DeployRefused as refused:
        return openai_error(409, str(refused), code="deploy_refused")
    return JsonResponse(deployment_json(adapter, deployment))


@api_view
def deployment(request, model: str):
    """GET: one model's deployment. DELETE: undeploy it (a second DELETE is harmless)."""
    adapter = _adapter_for(request, model)
    if adapter is None:
        return _model_not_found(model)
    if request.method == "GET":
        return JsonResponse(deployment_json(adapter, live_deployment(adapter)))
    if request.method != "DELETE":
        return _not_allowed(request)
    detached = deployment_detach(adapter_id=adapter.pk, organization_id=request.organization.pk)
    return JsonResponse(
        {**deployment_json(adapter, None), "status": "detached", "deleted": detached}
    )


@api_view
def export_hugging_face(request):
    """POST {"model", "huggingface_repository_id", "huggingface_access_token", "merged"}:
    push to the Hub. The token is used for this push only and never returned."""
    if request.method != "POST":
        return _not_allowed(request)
    body = _json_body(request) or {}
    adapter = _adapter_for(request, body.get("model"))
    if adapter is None:
        return _model_not_found(body.get("model"))
    try:
        export = adapter_export_hub(
            adapter=adapter,
            token=body.get("huggingface_access_token") or "",
            repo_id=body.get("huggingface_repository_id") or "",
            merged=bool(body.get("merged", False)),
            private=bool(body.get("private", True)),
        )
    except ExportRefused as refused:
        return openai_error(400, str(refused))
    payload = {
        "object": "export",
        "id": export.pk,
        "model": adapter.model_id,
        "repository_id": export.repo_id,
        "merged": export.merged,
        "status": export.status,
        "commit_url": export.commit_url or None,
        "max_logit_diff": export.max_logit_diff,
        "error": export.error or None,
    }
    status = {HubExport.Status.PUSHED: 200, HubExport.Status.REFUSED: 422}.get(export.status, 502)
    return JsonResponse(payload, status=status)
