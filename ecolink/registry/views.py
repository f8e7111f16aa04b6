"""Browser pages and actions for fine-tuned models: deploy, undeploy, the streaming
playground, download, delete and export to the Hugging Face Hub.

Every action re-renders the deploy panel for htmx, and redirects to the job page without
it, so the buttons work without JavaScript too.
"""

import json

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import FileResponse, Http404, JsonResponse, StreamingHttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_POST

from ecolink.accounts.scoping import current_organization, get_for_org, org_queryset
from ecolink.registry.completions import CompletionError, complete_stream
from ecolink.registry.downloads import (
    BadDownloadLink,
    adapter_archive,
    adapter_for_token,
    archive_name,
    signed_download_url,
)
from ecolink.registry.export import ExportRefused, adapter_export_hub
from ecolink.registry.models import HubExport, RegisteredAdapter
from ecolink.registry.services import (
    DeployRefused,
    adapter_delete,
    deployment_create,
    deployment_detach,
    live_deployment,
    running_instance,
)

PANEL = "registry/partials/panel.html"


def _adapter(request, pk: int) -> RegisteredAdapter:
    return get_for_org(
        request, RegisteredAdapter.objects.select_related("job", "base_model"), pk=pk
    )


def panel_context(request, adapter: RegisteredAdapter, **extra) -> dict:
    """Everything the deploy panel shows for one adapter."""
    deployment = live_deployment(adapter)
    api_base = request.build_absolute_uri("/v1")
    return {
        "adapter": adapter,
        "job": adapter.job,
        "deployment": deployment,
        "deployed": deployment is not None and deployment.status == "deployed",
        "instance_running": running_instance(adapter.base_model_id) is not None,
        "api_base": api_base,
        "deleted": adapter.deleted_at is not None,
        "download_url": signed_download_url(adapter) if adapter.deleted_at is None else "",
        "last_export": adapter.exports.first(),
        **extra,
    }


def _panel_or_back(request, adapter: RegisteredAdapter, *, error: str = "", notice: str = ""):
    if request.htmx:
        return render(request, PANEL, panel_context(request, adapter, error=error, notice=notice))
    if error:
        messages.error(request, error)
    elif notice:
        messages.success(request, notice)
    return redirect("finetune:detail", pk=adapter.job_id)


@login_required
def model_list(request):
    adapters = org_queryset(request, RegisteredAdapter).select_related("base_model", "job")
    return render(request, "registry/list.html", {"adapters": adapters[:200]})


@login_required
def model_detail(request, pk: int):
    adapter = _adapter(request, pk)
    return render(request, "registry/detail.html", panel_context(request, adapter))


@login_required
@require_POST
def deploy(request, pk: int):
    adapter = _adapter(request, pk)
    try:
        deployment_create(adapter_id=adapter.pk, organization_id=adapter.organization_id)
    except DeployRefused as refused:
        return _panel_or_back(request, adapter, error=str(refused))
    return _panel_or_back(request, adapter, notice=f"Deployed: call it as {adapter.model_id}.")


@login_required
@require_POST
def undeploy(request, pk: int):
    adapter = _adapter(request, pk)
    deployment_detach(adapter_id=adapter.pk, organization_id=adapter.organization_id)
    return _panel_or_back(request, adapter, notice="Undeployed.")


@login_required
@require_POST
def playground(request, pk: int):
    """The playground's chat: the same completion as the API, streamed as SSE, billed to
    the current organization. Body: {"messages": [...]} (JSON) or a `prompt` form field."""
    adapter = _adapter(request, pk)
    if request.content_type == "application/json":
        try:
            body = json.loads(request.body)
        except ValueError:
            return JsonResponse({"error": {"message": "The body is not JSON."}}, status=400)
    else:
        body = {"messages": [{"role": "user", "content": request.POST.get("prompt", "")}]}
    body = {
        "messages": body.get("messages") if isinstance(body, dict) else None,
        "model": adapter.model_id,
        "max_tokens": 64,
        "temperature": 0,
        "stream": True,
    }
    try:
        events = complete_stream(organization_id=current_organization(request).pk, body=body)
    except CompletionError as exc:
        return JsonResponse(
            {"error": {"message": exc.message, "type": exc.type}}, status=exc.status
        )
    response = StreamingHttpResponse(events, content_type="text/event-stream")
    response["Cache-Control"] = "no-cache"
    response["X-Accel-Buffering"] = "no"
    return response


@login_required
@require_GET
def download(request, pk: int):
    """The browser's Download: a fresh signed link, followed at once."""
    adapter = _adapter(request, pk)
    if adapter.deleted_at is not None:
        raise Http404("This model was deleted.")
    return redirect(signed_download_url(adapter))


@require_GET
def download_signed(request, token: str):
    """The archive behind a signed link; the link is the credential (no login)."""
    try:
        adapter = adapter_for_token(token)
    except BadDownloadLink as bad:
        raise Http404(str(bad)) from None
    return FileResponse(
        adapter_archive(adapter),
        as_attachment=True,
        filename=f"{archive_name(adapter)}.tar.gz",
        content_type="application/gzip",
    )


@login_required
@require_POST
def delete(request, pk: int):
    adapter = _adapter(request, pk)
    adapter_delete(adapter_id=adapter.pk, organization_id=adapter.organization_id)
    adapter.refresh_from_db()
    return _panel_or_back(
        request, adapter, notice="Deleted: the files are gone; billing history stays."
    )


@login_required
@require_POST
def export_hub(request, pk: int):
    """Push to the Hub with the token from the form; the token is not kept or shown."""
    adapter = _adapter(request, pk)
    try:
        export = adapter_export_hub(
            adapter=adapter,
            token=request.POST.get("hf_token", ""),
            repo_id=request.POST.get("repo_id", "").strip(),
            merged=request.POST.get("merged") == "on",
        )
    except ExportRefused as refused:
        return _panel_or_back(request, adapter, error=str(refused))
    if export.status == HubExport.Status.PUSHED:
        return _panel_or_back(request, adapter, notice=f"Exported to {export.repo_id}.")
    return _panel_or_back(request, adapter, error=export.error or "The export failed.")
