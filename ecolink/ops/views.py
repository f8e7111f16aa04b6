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

from ecolink.billing.money import dollars
from ecolink.catalog.models import GpuType
from ecolink.finetune.models import Job
from ecolink.finetune.outcomes import ActionRefused
from ecolink.ops import charts, selectors, throughput
from ecolink.ops.forms import EfficiencyForm
from ecolink.ops.models import AuditLog
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


def _duration(seconds: int | None) -> str:
    if seconds is None:
        return "—"
    hours, rest = divmod(seconds, 3600)
    return f"{hours} h {rest // 60} min" if hours else f"{rest // 60} min {rest % 60} s"


@operator_required("ops.view_dashboard")
def dashboard(request: HttpRequest) -> HttpResponse:
    now = timezone.now()
    pools = selectors.gpu_pools()
    queue = selectors.queue_summary(now)
    statuses = selectors.jobs_by_status()
    revenue = selectors.revenue_by_hour(now)
    failures = selectors.failures_by_class(now)
    accuracy = selectors.estimate_accuracy(now)
    buckets = [("below", accuracy.below)]
    for i in range(4):
        low, high = i / 4, (i + 1) / 4
        n = sum(1 for p in accuracy.positions if low <= p < high or (i == 3 and p == 1))
        buckets.append((f"{int(low * 100)}–{int(high * 100)}%", n))
    buckets.append(("above", accuracy.above))
    context = {
        "now": now,
        "pools": pools,
        "queue": queue,
        "oldest_wait": _duration(queue.oldest_wait_seconds),
        "statuses": statuses,
        "revenue_total": sum(v for _, v in revenue),
        "failures": failures,
        "accuracy": accuracy,
        "mismatched": selectors.mismatched_organizations().count(),
        "audit": AuditLog.objects.all()[:10],
        "capacity_chart": charts.bars(
            "GPUs in use and free",
            [
                (
                    f"{p.region} · {p.gpu_type}",
                    [
                        (p.in_use, "bar-used", f"{p.in_use} in use"),
                        (p.free, "bar-free", f"{p.free} free"),
                    ],
                )
                for p in pools
            ],
        ),
        "status_chart": charts.bars(
            "Jobs by status", [(label, [(n, "bar", f"{n} {label}")]) for label, n in statuses]
        ),
        "revenue_chart": charts.columns(
            "Revenue per hour",
            [(h.strftime("%H:00"), v, dollars(v)) for h, v in revenue],
            every=6,
        ),
        "failure_chart": charts.bars(
            "Failures by error class",
            [(cls or "unclassified", [(n, "bar-bad", f"{n} failed")]) for cls, n in failures],
        ),
        "accuracy_chart": charts.columns(
            "Where bills landed", [(label, n, str(n)) for label, n in buckets]
        ),
    }
    return render(request, "ops/dashboard.html", context)


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
