"""Writes for the wizard: saving drafts and approving one into a queued job."""

from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.db.models import QuerySet

from ecolink.accounts.models import Organization
from ecolink.datasets.models import Dataset
from ecolink.finetune.models import Job, WizardDraft
from ecolink.finetune.runconfig import render_run_config
from ecolink.finetune.wizard import resolve_draft
from worker.trainer.config import ConfigError


class ApprovalRefused(Exception):
    """A gate said no. The message says which, in words for the user."""


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
    state = resolve_draft(draft, datasets)
    if state.problems:
        raise ApprovalRefused(next(iter(state.problems.values())))
    quote = state.quote
    if quote is None:
        raise ApprovalRefused("Finish every step before approving.")
    if quote.blockers:
        raise ApprovalRefused(" ".join(quote.blockers))
    hp = quote.hyperparameters
    job = Job.objects.create(
        organization=organization,
        created_by=user,
        name=f"{quote.base_model.display_name} on {quote.dataset.name}",
        draft_token=draft.token,
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
        job.run_config = render_run_config(job=job, quote=quote)
    except ConfigError as bad:  # rolls the job back: nothing half-made is left queued
        raise ApprovalRefused(f"The training configuration is not valid: {bad}") from bad
    job.save(update_fields=["run_config"])
    draft.job = job
    draft.save(update_fields=["job", "updated_at"])
    from worker.tasks import launch_job

    transaction.on_commit(lambda: launch_job.delay(job.pk))
    return job
