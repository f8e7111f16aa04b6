"""The job pages: the list, the detail page with its per-state panel and tabs, and the
Pause / Resume / Cancel buttons. Views read through `selectors` and change state only
through `actions`."""

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.db.models import Sum
from django.db.models.functions import Coalesce
from django.http import Http404, HttpResponseBadRequest, JsonResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from ecolink.accounts.scoping import current_organization, get_for_org, org_queryset
from ecolink.finetune import selectors
from ecolink.finetune.actions import (
    CANCELLABLE,
    PAUSABLE,
    job_cancel,
    job_pause,
    job_resume,
    resume_gate,
)
from ecolink.finetune.lifecycle import TERMINAL_STATUSES
from ecolink.finetune.models import Job
from ecolink.finetune.outcomes import ActionRefused
from ecolink.finetune.selectors import LEVELS, SOURCES, job_logs

S = Job.Status
TABS = ("metrics", "logs", "events")
ACTIONS = {
    "pause": lambda job_id: job_pause(job_id=job_id, reason="user"),
    "resume": lambda job_id: job_resume(job_id=job_id),
    "cancel": lambda job_id: job_cancel(job_id=job_id),
}


@login_required
def job_list(request):
    jobs = (
        org_queryset(request, Job)
        .select_related("base_model", "dataset")
        .annotate(cost_micros=Coalesce(Sum("sessions__charged_micros"), 0))
        .order_by("-created_at", "-id")
    )
    status = request.GET.get("status", "")
    if status in S.values:
        jobs = jobs.filter(status=status)
    page = Paginator(jobs, 25).get_page(request.GET.get("page"))
    return render(
        request,
        "finetune/list.html",
        {"page": page, "statuses": S.choices, "status": status},
    )


def _job(request, pk: int) -> Job:
    return get_for_org(
        request,
        Job.objects.select_related("base_model", "dataset", "gpu_type", "region", "adapter"),
        pk=pk,
    )


def _status_context(request, job: Job) -> dict:
    """What the per-state panel needs: a constant number of queries, whatever the history."""
    balance = current_organization(request).balance_micros
    gate = resume_gate(job, balance_micros=balance)
    context = {
        "job": job,
        "cost_micros": selectors.job_cost_micros(job),
        "live": job.status not in TERMINAL_STATUSES and job.status != S.PAUSED,
        "can_pause": job.status in PAUSABLE,
        "can_cancel": job.status in CANCELLABLE,
        "resume_needed_micros": gate.needed_micros if job.status == S.PAUSED else 0,
        "can_resume": job.status == S.PAUSED and gate.open,
        "balance_micros": balance,
    }
    if job.status in (S.STARTING, S.TRAINING, S.PAUSING):
        context["progress"] = selectors.job_progress(job)
    if job.status == S.EVALUATING:
        context["usual_eval_seconds"] = selectors.usual_evaluation_seconds(job)
    if job.status == S.REGISTERED and hasattr(job, "adapter"):
        context["download_url"] = _download_url(job)
    return context


def _download_url(job: Job) -> str:
    from ecolink.registry.downloads import signed_download_url

    return signed_download_url(job.adapter)


@login_required
def job_detail(request, pk: int):
    """The job page: the per-state panel (polled), the curated settings and three tabs."""
    job = _job(request, pk)
    tab = request.GET.get("tab", "metrics")
    if tab not in TABS:
        tab = "metrics"
    shape = selectors.batch_shape(job.run_config, selectors.realised_shape(job))
    context = {
        **_status_context(request, job),
        **_tab_context(request, job, tab),
        "settings_rows": selectors.curated_settings(job, shape),
        "checkpoint": selectors.checkpoint_reference(job),
    }
    return render(request, "finetune/detail.html", context)


@login_required
def job_status(request, pk: int):
    """The per-state panel alone: what htmx polls every few seconds while the job is live."""
    return render(
        request, "finetune/partials/job_status.html", _status_context(request, _job(request, pk))
    )


def _tab_context(request, job: Job, tab: str) -> dict:
    context = {"tab": tab, "tabs": TABS, "job": job}
    if tab == "logs":
        source = request.GET.get("source", "training")
        level = request.GET.get("level", "INFO")
        source = source if source in SOURCES else "training"
        level = level if level in LEVELS else "INFO"
        context.update(
            sources=SOURCES,
            levels=LEVELS,
            source=source,
            level=level,
            lines=job_logs(job, source=source, min_level=level),
        )
    elif tab == "events":
        events = job.events.order_by("-id").only("kind", "message", "created_at")
        context["events_page"] = Paginator(events, 100).get_page(request.GET.get("page"))
    return context


@login_required
def job_tab(request, pk: int, tab: str):
    if tab not in TABS:
        raise Http404("No such tab.")
    job = _job(request, pk)
    return render(request, "finetune/partials/job_tab.html", _tab_context(request, job, tab))


@login_required
def job_metrics(request, pk: int):
    """Chart points newer than `after_train` / `after_eval`: the charts append them."""

    def step(name: str) -> int:
        value = request.GET.get(name, "")
        return int(value) if value.lstrip("-").isdigit() else -1

    job = _job(request, pk)
    points = selectors.metrics_since(
        job, after_train=step("after_train"), after_eval=step("after_eval")
    )
    live = job.status not in TERMINAL_STATUSES and job.status != S.PAUSED
    return JsonResponse({"status": job.status, "live": live, **points})


@login_required
@require_POST
def job_action(request, pk: int, action: str):
    """Pause, resume or cancel. Each is idempotent: a second click changes nothing."""
    if action not in ACTIONS:
        return HttpResponseBadRequest("Unknown action.")
    job = get_for_org(request, Job, pk=pk)
    refusal = ""
    try:
        ACTIONS[action](job.pk)
    except ActionRefused as refused:
        refusal = str(refused)
    if request.htmx:
        context = {**_status_context(request, _job(request, pk)), "refusal": refusal}
        return render(request, "finetune/partials/job_status.html", context)
    if refusal:
        messages.error(request, refusal)
    return redirect("finetune:detail", pk=pk)
