"""Wizard drafts and job requests: saving what a user entered, and checking a request
(from the wizard's draft or from an API body in the draft's shape) exactly as the wizard
does, down to its quote. Creating the job is an action (`actions.job_create`)."""

from dataclasses import dataclass

from django.contrib.auth.models import User
from django.db.models import QuerySet

from ecolink.accounts.models import Organization
from ecolink.catalog.models import BaseModel, GpuType, Region
from ecolink.datasets.models import Dataset
from ecolink.finetune.capacity import Capacity, region_capacity
from ecolink.finetune.hyperparams import default_hyperparameters
from ecolink.finetune.models import WizardDraft
from ecolink.finetune.outcomes import ApprovalRefused
from ecolink.finetune.planning.planner import Plan
from ecolink.finetune.planning.quote import NO_CAPACITY, Quote, make_plan
from ecolink.finetune.wizard import HyperparametersStep, gpu_choice_problems, resolve_draft

# Which request field a wizard step checks, for the API's `param`.
STEP_FIELDS = {1: "dataset", 2: "base_model", 3: "gpu_type", 4: "hyperparameters"}


def wizard_draft_current(*, user: User, organization: Organization) -> WizardDraft:
    """The user's open draft in this organization, or a new one."""
    draft = WizardDraft.objects.filter(
        user=user, organization=organization, job__isnull=True
    ).first()
    return draft or WizardDraft.objects.create(user=user, organization=organization)


def wizard_draft_save(*, draft: WizardDraft, values: dict) -> WizardDraft:
    """Merge one step's values into the draft. Changing an early choice keeps later ones;
    resolving the draft re-checks them."""
    draft.data = {**draft.data, **values}
    draft.save(update_fields=["data", "updated_at"])
    return draft


def job_request_quote(
    *,
    organization: Organization,
    values: dict,
    datasets: QuerySet[Dataset],
) -> Quote:
    """Check a job request exactly as the wizard does and return its quote.

    `values` has the wizard draft's shape (dataset, base_model, gpu_type, gpu_count, region,
    hyperparameters). Raises ApprovalRefused naming the first problem; the quote's gates
    are not applied here.
    """
    draft = WizardDraft(organization=organization, data=values)
    return draft_quote(draft, datasets, name_fields=True)


def draft_quote(
    draft: WizardDraft, datasets: QuerySet[Dataset], *, name_fields: bool = False
) -> Quote:
    """The quote of a complete draft; ApprovalRefused names the first problem."""
    state = resolve_draft(draft, datasets)
    if state.problems:
        step, message = next(iter(state.problems.items()))
        param = STEP_FIELDS.get(step)
        if step == 4 and name_fields:  # say which hyperparameter, for API callers
            form = HyperparametersStep(
                draft.data["hyperparameters"], dataset=state.dataset, base_model=state.base_model
            )
            form.is_valid()
            param, errors = next(iter(form.errors.items()))
            message = f"{param}: {errors[0]}"
        raise ApprovalRefused(message, param=param)
    if state.quote is None:
        raise ApprovalRefused("Finish every step before approving.")
    return state.quote


@dataclass(frozen=True)
class HardwareVerdict:
    """Would a base train on this hardware? The wizard's own checks, then its gates."""

    problems: list[str]
    plan: Plan | None = None
    capacity: Capacity | None = None

    @property
    def valid(self) -> bool:
        return not self.problems


def hardware_check(
    *,
    base_model: BaseModel,
    gpu_type: GpuType,
    gpu_count: int,
    region: Region | None,
    hyperparameters: dict,
) -> HardwareVerdict:
    """Step 3's checks of the GPU choice and step 4's ranges (over the defaults for what
    `hyperparameters` leaves out), then the fit and, with a region, the capacity gate."""
    problems = list(gpu_choice_problems(gpu_type, gpu_count, region).values())
    defaults = default_hyperparameters(context_length=base_model.context_length)
    form = HyperparametersStep({**defaults, **hyperparameters}, dataset=None, base_model=base_model)
    if not form.is_valid():
        problems += [f"{name}: {errors[0]}" for name, errors in form.errors.items()]
    if problems:
        return HardwareVerdict(problems)
    plan = make_plan(base_model, gpu_type, form.cleaned_data, gpu_count)
    if not plan.fits:
        problems.append(plan.reason)
    capacity = None
    if region is not None:
        capacity = region_capacity(
            region_id=region.pk, gpu_type_id=gpu_type.pk, requested=gpu_count
        )
        if not capacity.available:
            problems.append(NO_CAPACITY)
    return HardwareVerdict(problems, plan, capacity)
