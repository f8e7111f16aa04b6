"""The operator dashboard and the observed-throughput pages: staff only, server-rendered."""

from collections.abc import Callable
from functools import wraps
from typing import cast

from django.contrib import messages
from django.contrib.auth.models import User
from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.views.decorators.http import require_http_methods

from ecolink.catalog.models import GpuType
from ecolink.finetune.models import Job
from ecolink.finetune.outcomes import ActionRefused
from ecolink.ops import throughput
from ecolink.ops.dashboard import dashboard_context
from ecolink.ops.forms import EfficiencyForm
from ecolink.ops.services import efficiency_update


def operator_required(perm: str) -> Callable:
    """Logged-in staff holding `perm`. Anyone else who is logged in sees a 404: the
    console does not exist for them."""

    def decorator(view):
        @wraps(view)
        def wrapped(request: HttpRequest, *args, **kwargs):
            if not request.user.is_authenticated:
                return redirect_to_login(request.get_full_path())
            if not request.user.is_staff:
                raise Http404
            if not request.user.has_perm(perm):
                raise PermissionDenied
            return view(request, *args, **kwargs)

        return wrapped

    return decorator


@operator_required("ops.view_dashboard")
def dashboard(request: HttpRequest) -> HttpResponse:
    return render(request, "ops/dashboard.html", dashboard_context(timezone.now()))


@operator_required("ops.view_dashboard")
def throughput_list(request: HttpRequest) -> HttpResponse:
    return render(request, "ops/throughput.html", {"groups": throughput.observed_groups()})


@operator_required("ops.view_dashboard")
@require_http_methods(["GET", "POST"])
def throughput_review(request: HttpRequest, gpu_slug: str, method: str) -> HttpResponse:
    """Preview the effect of a new efficiency on the estimates of finished jobs (GET), then
    save it with a reason (POST)."""
    if method not in Job.Method.values:
        raise Http404
    gpu = get_object_or_404(GpuType, slug=gpu_slug)
    group = throughput.observed_group(gpu, method)
    proposed = group.observed or group.current
    if request.method == "POST":
        if not request.user.has_perm("ops.update_efficiency"):
            raise PermissionDenied
        form = EfficiencyForm(request.POST)
        if form.is_valid():
            try:
                efficiency_update(
                    operator=cast(User, request.user),  # operators only
                    gpu_type_id=gpu.pk,
                    method=method,
                    efficiency=form.cleaned_data["efficiency"],
                    reason=form.cleaned_data["reason"],
                )
            except ActionRefused as refused:
                form.add_error(None, str(refused))
            else:
                messages.success(
                    request,
                    f"{gpu.display_name} {method}: efficiency set to "
                    f"{form.cleaned_data['efficiency']:.4%}.",
                )
                return redirect("ops:throughput")
        proposed = form.cleaned_data.get("efficiency", proposed) if form.is_bound else proposed
    else:
        preview = EfficiencyForm({"efficiency": request.GET.get("efficiency", "")})
        preview.is_valid()
        proposed = preview.cleaned_data.get("efficiency") or proposed
        form = EfficiencyForm(initial={"efficiency": round(proposed, 6)})
    effects = throughput.effects(group, proposed)
    context = {
        "gpu": gpu,
        "method": method,
        "group": group,
        "proposed": proposed,
        "effects": effects,
        "inside_now": sum(e.inside_now for e in effects),
        "inside_proposed": sum(e.inside_proposed for e in effects),
        "form": form,
    }
    return render(request, "ops/throughput_review.html", context)
