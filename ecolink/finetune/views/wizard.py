"""The wizard at /fine-tune/new: six steps, each re-rendered with htmx, and Approve & Train."""

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpResponseBadRequest
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST
from django_htmx.http import HttpResponseClientRedirect

from ecolink.accounts.scoping import current_organization, org_queryset
from ecolink.datasets.models import Dataset
from ecolink.finetune.actions import job_approve
from ecolink.finetune.drafts import wizard_draft_current, wizard_draft_save
from ecolink.finetune.hyperparams import default_hyperparameters
from ecolink.finetune.outcomes import ApprovalRefused
from ecolink.finetune.planning.quote import gpu_overview
from ecolink.finetune.wizard import (
    RECOMMENDED_EXAMPLES,
    STEPS,
    eligible_bases,
    resolve_draft,
    step_form,
)

LAST_STEP = STEPS[-1][0]


def _step_url(step: int) -> str:
    return f"{reverse('finetune:new')}?step={step}"


def _render_wizard(request, state, datasets, step: int, form=None, error: str = ""):
    form = form or step_form(step, state, datasets)
    context = {
        "steps": STEPS,
        "step": step,
        "state": state,
        "quote": state.quote,
        "form": form,
        "error": error,
        "recommended_examples": RECOMMENDED_EXAMPLES,
        "bases": eligible_bases() if step == 2 else None,
        "has_ready_dataset": datasets.filter(status=Dataset.Status.READY).exists(),
    }
    if step == 3 and state.base_model:
        context.update(_gpu_step_context(state, form))
    template = "finetune/wizard/body.html" if request.htmx else "finetune/wizard/page.html"
    response = render(request, template, context)
    if request.htmx:
        response["HX-Push-Url"] = _step_url(step)
    return response


@login_required
def wizard(request):
    """All six steps at /fine-tune/new: GET shows a step, POST saves one and moves on.

    htmx requests get the wizard body back and the step pushed to the URL, so back,
    forward and reload work; without JavaScript every POST redirects to the next step.
    """
    org = current_organization(request)
    datasets = org_queryset(request, Dataset)
    draft = wizard_draft_current(user=request.user, organization=org)
    if request.method == "GET" and request.GET.get("dataset", "").isdigit():
        dataset = datasets.filter(pk=int(request.GET["dataset"])).first()
        if dataset is None or dataset.status != Dataset.Status.READY:
            messages.error(request, "That dataset is not one of yours that is ready to train.")
        else:
            wizard_draft_save(draft=draft, values={"dataset": dataset.pk})
    state = resolve_draft(draft, datasets)

    if request.method == "GET":
        wanted = request.GET.get("step", "")
        # From a dataset's Train button: show step 1 with it prefilled, then carry on.
        default = 1 if "dataset" in request.GET else state.furthest_step
        step = int(wanted) if wanted.isdigit() else default
        return _render_wizard(request, state, datasets, min(max(step, 1), state.furthest_step))

    step = request.POST.get("step", "")
    if not step.isdigit() or not 1 <= int(step) <= LAST_STEP:
        return HttpResponseBadRequest("Unknown wizard step.")
    # Buttons say next or back; a bare submit is htmx re-validating a changed field.
    step, action = int(step), request.POST.get("action", "refresh")
    if action == "back":
        return _after_post(request, state, datasets, max(1, step - 1))
    if step == LAST_STEP:
        return _approve(request, org, datasets, state)
    form = step_form(step, state, datasets, data=request.POST)
    if form is not None:
        if not form.is_valid():
            return _render_wizard(request, state, datasets, step, form=form)
        wizard_draft_save(draft=draft, values=form.values())
        state = resolve_draft(draft, datasets)
    if action == "refresh":  # a field changed: re-validate and redraw the same step
        return _render_wizard(request, state, datasets, step)
    return _after_post(request, state, datasets, min(step + 1, state.furthest_step))


def _gpu_step_context(state, form) -> dict:
    """The planner's answer for every GPU type, and for the one selected (or posted)."""
    hp = state.draft.data.get("hyperparameters") or default_hyperparameters(
        context_length=state.base_model.context_length
    )
    raw_count = form["gpu_count"].value()
    count = int(raw_count) if str(raw_count).isdigit() and int(raw_count) >= 1 else 1
    plans = gpu_overview(state.base_model, hp, count)
    selected = str(form["gpu_type"].value() or "")
    selected_plan = next((p for g, p in plans if str(g.pk) == selected), None)
    return {"gpu_plans": plans, "selected_plan": selected_plan, "selected_count": count}


def _after_post(request, state, datasets, step: int):
    if request.htmx:
        return _render_wizard(request, state, datasets, step)
    return redirect(_step_url(step))


def _approve(request, org, datasets, state):
    try:
        job = job_approve(
            user=request.user,
            organization=org,
            token=request.POST.get("token", ""),
            datasets=datasets,
        )
    except ApprovalRefused as refused:
        return _render_wizard(request, state, datasets, LAST_STEP, error=str(refused))
    url = reverse("finetune:detail", args=[job.pk])
    return HttpResponseClientRedirect(url) if request.htmx else redirect(url)


@login_required
@require_POST
def wizard_restart(request):
    org = current_organization(request)
    draft = wizard_draft_current(user=request.user, organization=org)
    wizard_draft_save(draft=draft, values={k: None for k in draft.data})
    return redirect(_step_url(1))
