"""Writes for fine-tune jobs: saving wizard drafts, and creating a queued job from the
wizard's Approve & Train or from the API. Both go through `job_request_quote` (every
wizard check, re-run on the server) and `job_create` (the gates, the row, the run config)."""

from django.contrib.auth.models import AbstractBaseUser
from django.core.files.storage import default_storage
from django.db import transaction
from django.db.models import QuerySet

from ecolink.accounts.models import Organization
from ecolink.datasets.models import Dataset
from ecolink.finetune.models import Job, WizardDraft
from ecolink.finetune.quote import Quote, make_quote
from ecolink.finetune.runconfig import render_run_config
from ecolink.finetune.wizard import HyperparametersStep, resolve_draft
from worker.trainer.config import ConfigError, RunConfig

# Methods a caller may name beyond the wizard's choices: the wizard offers "auto", which
# resolves to one of these two; the API may ask for one outright.
EXPLICIT_LORA_METHODS = ("lora", "qlora")
# Which request field a wizard step checks, for the API's `param`.
STEP_FIELDS = {1: "dataset", 2: "base_model", 3: "gpu_type", 4: "hyperparameters"}


class ApprovalRefused(Exception):
    """A gate said no. The message says which, in words for the user.

    `code` tells callers which gate (the API maps it to a status): invalid, does_not_fit,
    capacity_unavailable or insufficient_balance; `param` names the field at fault.
    """

    def __init__(self, message: str, *, code: str = "invalid", param: str | None = None):
        super().__init__(message)
        self.code, self.param = code, param


def wizard_draft_current(*, user: AbstractBaseUser, organization: Organization) -> WizardDraft:
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
    method: str | None = None,
) -> Quote:
    """Check a job request exactly as the wizard does and return its quote.

    `values` has the wizard draft's shape (dataset, base_model, gpu_type, gpu_count, region,
    hyperparameters). `method` may force "lora" or "qlora" where the wizard says "auto".
    Raises ApprovalRefused naming the first problem; the quote's gates are not applied here.
    """
    draft = WizardDraft(organization=organization, data=values)
    return _draft_quote(draft, datasets, method, name_fields=True)


def _draft_quote(
    draft: WizardDraft,
    datasets: QuerySet[Dataset],
    method: str | None = None,
    *,
    name_fields: bool = False,
) -> Quote:
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
    quote = state.quote
    if quote is None:
        raise ApprovalRefused("Finish every step before approving.")
    if method in EXPLICIT_LORA_METHODS and quote.hyperparameters["method"] == "auto":
        quote = make_quote(
            organization=draft.organization,
            dataset=quote.dataset,
            base_model=quote.base_model,
            gpu_type=quote.gpu_type,
            gpu_count=quote.gpu_count,
            region=quote.region,
            hyperparameters={**quote.hyperparameters, "method": method},
        )
    return quote


def quote_gate(quote: Quote) -> None:
    """Refuse a quote that can't start: it doesn't fit, the region is full, or the balance
    is below the upper estimate. The message lists every blocker, as the wizard shows it."""
    blockers = quote.blockers
    if not blockers:
        return
    if not quote.plan.fits:
        code, param = "does_not_fit", "gpu_type"
    elif not quote.capacity.available:
        code, param = "capacity_unavailable", "region"
    else:
        code, param = "insufficient_balance", None
    raise ApprovalRefused(" ".join(blockers), code=code, param=param)


@transaction.atomic
def job_create(
    *,
    organization: Organization,
    user: AbstractBaseUser | None,
    quote: Quote,
    name: str = "",
    validation_dataset: Dataset | None = None,
    draft_token=None,
) -> Job:
    """Create the queued job for a checked quote, after the gates, and launch it on commit.

    `validation_dataset`, when given, is evaluated on instead of the training dataset's own
    validation split (its training split: the bulk of its examples).
    """
    quote_gate(quote)
    hp = quote.hyperparameters
    extra = {"draft_token": draft_token} if draft_token else {}
    job = Job.objects.create(
        **extra,
        organization=organization,
        created_by=user,
        name=(name or f"{quote.base_model.display_name} on {quote.dataset.name}")[:200],
        dataset=quote.dataset,
        base_model=quote.base_model,
        gpu_type=quote.gpu_type,
        gpu_count=quote.gpu_count,
        region=quote.region,
        requested_method=hp["method"],
        method=quote.plan.method,
        objective=hp["objective"],
        hyperparameters={**hp, "target_modules": list(hp["target_modules"])},
        plan_summary=quote.plan.reason,
        total_steps=quote.total_steps,
        estimate_low_micros=quote.estimate.low_micros,
        estimate_high_micros=quote.estimate.high_micros,
        estimate_seconds_low=quote.estimate.low_seconds,
        estimate_seconds_high=quote.estimate.high_seconds,
    )
    try:
        config = render_run_config(job=job, quote=quote)
        if validation_dataset is not None and validation_dataset.train_file:
            config["validation_file"] = default_storage.path(validation_dataset.train_file)
            config = RunConfig.from_dict(config).to_dict()
    except ConfigError as bad:  # rolls the job back: nothing half-made is left queued
        raise ApprovalRefused(f"The training configuration is not valid: {bad}") from bad
    job.run_config = config
    job.save(update_fields=["run_config"])
    from worker.tasks import launch_job

    transaction.on_commit(lambda: launch_job.delay(job.pk))
    return job


@transaction.atomic
def job_approve(
    *, user: AbstractBaseUser, organization: Organization, token: str, datasets: QuerySet[Dataset]
) -> Job:
    """Create the queued job for a draft, after checking every gate again on the server.

    The draft row is locked: a double submit waits for the first and gets its job.
    """
    draft = (
        WizardDraft.objects.select_for_update()
        .filter(token=token, user=user, organization=organization)
        .first()
    )
    if draft is None:
        raise ApprovalRefused("This draft no longer exists: start the wizard again.")
    if draft.job_id is not None:
        return draft.job
    quote = _draft_quote(draft, datasets)
    job = job_create(organization=organization, user=user, quote=quote, draft_token=draft.token)
    draft.job = job
    draft.save(update_fields=["job", "updated_at"])
    return job
