"""Every change of a job's status, as one action each: create, launch, start training,
evaluate, finish, register, pause, resume, cancel, fail and retry.

Nothing else moves `Job.status`. Pages, the APIs, the operator console, the event ingester
and the reconciler call these; each action locks the job, decides on the state it finds,
and moves it through `lifecycle.transition` (a conditional update that records an event).
User-facing actions return an `ActionResult` (done, or already there) or raise
`ActionRefused` with the reason; see `outcomes.py`. Pod calls and launches are queued by
task name after the deciding transaction commits.
"""

import contextlib
import json
import secrets
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from django.conf import settings
from django.contrib.auth.models import User
from django.db import transaction
from django.db.models import QuerySet
from django.utils import timezone

from ecolink.accounts.models import Organization
from ecolink.billing.meter import session_settle
from ecolink.billing.models import BillingSession
from ecolink.billing.money import dollars
from ecolink.catalog.models import RegionCapacity
from ecolink.datasets.models import Dataset
from ecolink.enqueue import enqueue
from ecolink.finetune.capacity import region_capacity
from ecolink.finetune.drafts import draft_quote
from ecolink.finetune.lifecycle import ALLOWED, transition
from ecolink.finetune.models import Job, WizardDraft
from ecolink.finetune.outcomes import (
    ActionRefused,
    ActionResult,
    ApprovalRefused,
    BalanceTooLow,
    Outcome,
)
from ecolink.finetune.planning.quote import Quote, quote_gate
from ecolink.finetune.pods import events_url, hash_token, pod_backend
from ecolink.finetune.runconfig import job_artifacts_dir, render_run_config, storage_local_path
from ecolink.registry.models import RegisteredAdapter
from worker.pods import PodSpec
from worker.trainer.config import JOB_TOKEN_ENV, ConfigError, RunConfig

S = Job.Status

# A job with no pod running is cancelled at once; one with a pod goes through `cancelling`.
CANCEL_AT_ONCE = (S.QUEUED, S.PAUSED)
# What the buttons and the APIs offer is what the lifecycle allows.
PAUSABLE = ALLOWED[S.PAUSING]
CANCELLABLE = (*ALLOWED[S.CANCELLING], *CANCEL_AT_ONCE)
# A resume that finds the job in one of these was already resumed (a repeated click).
RESUMED = (S.QUEUED, S.STARTING, S.TRAINING, S.EVALUATING)
PAUSE_REASONS = {
    "balance": "Balance reached zero",
    "user": "Paused by you",
    "operator": "Paused by an operator",
}
# A trainer phase that moves the job's status.
PHASE_STATUS = {"training": S.TRAINING, "evaluating": S.EVALUATING}


def _locked(job_id: int) -> Job:
    return Job.objects.select_for_update().get(pk=job_id)


def _result(outcome: Outcome, job_id: int) -> ActionResult:
    return ActionResult(outcome, Job.objects.get(pk=job_id))


def _refused(job: Job, verb: str) -> ActionRefused:
    return ActionRefused(f"A {job.get_status_display().lower()} job can't be {verb}.")


def _retention_until():
    return timezone.now() + timedelta(days=settings.RETENTION_DAYS)


# --- Creating a job -----------------------------------------------------------------


@transaction.atomic
def job_create(
    *,
    organization: Organization,
    user: User | None,
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
            config["validation_file"] = storage_local_path(validation_dataset.train_file)
            config = RunConfig.from_dict(config).to_dict()
    except ConfigError as bad:  # rolls the job back: nothing half-made is left queued
        raise ApprovalRefused(f"The training configuration is not valid: {bad}") from bad
    job.run_config = config
    job.save(update_fields=["run_config"])
    enqueue("finetune.launch_job", job.pk)
    return job


@transaction.atomic
def job_approve(
    *, user: User, organization: Organization, token: str, datasets: QuerySet[Dataset]
) -> Job:
    """Create the queued job for a wizard draft, after checking every gate again.

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
    quote = draft_quote(draft, datasets)
    job = job_create(organization=organization, user=user, quote=quote, draft_token=draft.token)
    draft.job = job
    draft.save(update_fields=["job", "updated_at"])
    return job


# --- A pod run: launch, phases, finish ----------------------------------------------


def job_launch(*, job_id: int) -> bool:
    """Start the next pod run of a queued job if its region has the GPUs free.

    Returns False when the job is not queued (already launched: a rerun is harmless) or
    must wait for capacity (the reconciler tries again, oldest first).
    """
    token = secrets.token_urlsafe(32)
    with transaction.atomic():
        job = Job.objects.select_for_update().filter(pk=job_id, status=S.QUEUED).first()
        if job is None:
            return False
        # One launch at a time per GPU pool, so two can't both take the last slot.
        RegionCapacity.objects.select_for_update().filter(
            region_id=job.region_id, gpu_type_id=job.gpu_type_id
        ).first()
        capacity = region_capacity(
            region_id=job.region_id, gpu_type_id=job.gpu_type_id, requested=job.gpu_count
        )
        if not capacity.available:
            return False
        run = job.run_number + 1
        out = job_artifacts_dir(job.pk)
        config = RunConfig.from_dict(
            {
                **job.run_config,
                "resume_from": job.checkpoint_path or None,
                "events_url": events_url(job.pk),
            }
        )
        config_path = out / f"run-{run}.json"
        config_path.parent.mkdir(parents=True, exist_ok=True)
        config_path.write_text(json.dumps(config.to_dict(), indent=2))
        spec = PodSpec(
            job_id=job.pk,
            run=run,
            config_path=str(config_path),
            artifacts_dir=str(out),
            gpu_type=job.gpu_type.slug,
            gpu_count=job.gpu_count,
            secret_env={JOB_TOKEN_ENV: token},
            grace_seconds=settings.POD_STOP_GRACE_SECONDS,
        )
        now = timezone.now()
        BillingSession.objects.create(
            organization_id=job.organization_id,
            job=job,
            run=run,
            gpu_type_id=job.gpu_type_id,
            gpu_count=job.gpu_count,
            started_at=now,
        )
        transition(
            job_id=job.pk,
            to=S.STARTING,
            message=f"Starting pod run {run} on {job.gpu_count} × {job.gpu_type.display_name}",
            run_number=run,
            pod_name=spec.name,
            job_token_hash=hash_token(token),
            started_at=job.started_at or now,
            stop_requested_at=None,
            finished_at=None,
        )
    try:
        pod_backend().launch(spec)
    except Exception as exc:  # the pod never started: nothing to bill beyond the minimum
        job_fail(job_id=job_id, error_class="internal", message=f"Pod launch failed: {exc}")
        raise
    return True


def job_phase(*, job_id: int, phase: str) -> bool:
    """The trainer entered `phase`: training and evaluating move the status, others don't.
    A job already pausing, cancelling or ended keeps its status."""
    if phase not in PHASE_STATUS:
        return False
    return transition(job_id=job_id, to=PHASE_STATUS[phase])


def job_training_finish(
    *, job_id: int, adapter_path: str, manifest_path: str, metrics: dict
) -> bool:
    """The trainer wrote its final adapter: the job waits for its pod to exit cleanly,
    then the reconciler registers it."""
    return transition(
        job_id=job_id,
        to=S.TRAINED_PENDING_REGISTER,
        message="Training finished; registering the adapter",
        adapter_path=adapter_path[:500],
        manifest_path=manifest_path[:500],
        final_metrics=metrics,
    )


def model_id_for(job: Job) -> str:
    return f"ft:{job.base_model.hf_id}:{job.organization.slug}:{job.pk}"


@transaction.atomic
def job_register(*, job_id: int) -> RegisteredAdapter | None:
    """Register a finished run's adapter with its lineage; the job becomes `registered`."""
    job = (
        Job.objects.select_for_update()
        .select_related("organization", "base_model", "dataset")
        .filter(pk=job_id, status=S.TRAINED_PENDING_REGISTER)
        .first()
    )
    if job is None:
        return None
    manifest = json.loads(Path(job.manifest_path).read_text()) if job.manifest_path else {}
    adapter, _ = RegisteredAdapter.objects.get_or_create(
        job=job,
        defaults=dict(
            organization=job.organization,
            model_id=model_id_for(job),
            base_model=job.base_model,
            base_model_revision=manifest.get("base_model_revision", ""),
            dataset=job.dataset,
            dataset_hash=manifest.get("dataset_hash", job.dataset.content_hash),
            method=job.method,
            hyperparameters=manifest.get("hyperparameters", job.hyperparameters),
            metrics=manifest.get("metrics", job.final_metrics),
            path=job.adapter_path,
            manifest=manifest,
        ),
    )
    transition(
        job_id=job.pk,
        to=S.REGISTERED,
        message=f"Registered as {adapter.model_id}",
        status_reason="",
    )
    return adapter


# --- Billing of the current run -----------------------------------------------------


def current_session(job: Job) -> BillingSession | None:
    return BillingSession.objects.filter(job=job, run=job.run_number, ended_at__isnull=True).first()


def job_meter_settle(job: Job) -> None:
    """End the billing session of the job's current pod run, charging what it owes."""
    session = current_session(job)
    if session is not None:
        session_settle(session_id=session.pk)


@dataclass(frozen=True)
class ResumeGate:
    """Whether a paused job may resume: the balance must cover the estimated cost of the
    steps left after its latest checkpoint."""

    needed_micros: int
    balance_micros: int

    @property
    def open(self) -> bool:
        return self.balance_micros >= self.needed_micros

    @property
    def reason(self) -> str:
        return (
            f"Your balance ({dollars(self.balance_micros)}) is below the estimated cost of "
            f"the remaining steps ({dollars(self.needed_micros)}): top up first."
        )


def resume_gate(job: Job, *, balance_micros: int) -> ResumeGate:
    if not job.total_steps:
        needed = job.estimate_high_micros
    else:
        left = max(0, job.total_steps - job.checkpoint_step) / job.total_steps
        needed = int(job.estimate_high_micros * left)
    return ResumeGate(needed_micros=needed, balance_micros=balance_micros)


# --- What users (and operators) ask for ---------------------------------------------


@transaction.atomic
def job_pause(*, job_id: int, reason: str, note: str = "") -> ActionResult:
    """Ask the pod to checkpoint and exit; the meter stops now.

    `reason`: user | balance | operator; `note` replaces the reason's words on the page.
    A job already pausing or paused: already.
    """
    job = _locked(job_id)
    if job.status in (S.PAUSING, S.PAUSED):
        return ActionResult(Outcome.ALREADY, job)
    if job.status == S.QUEUED:
        raise ActionRefused("A queued job is not running yet: cancel it instead.")
    if job.status not in PAUSABLE:
        raise _refused(job, "paused")
    message = PAUSE_REASONS[reason]
    transition(
        job_id=job_id,
        to=S.PAUSING,
        expected=[job.status],
        message=f"Pausing: {message.lower()}",
        pause_reason=reason,
        stop_requested_at=timezone.now(),
        status_reason=(note or message)[:300],
    )
    job_meter_settle(job)
    enqueue("finetune.stop_pod", job.pk, job.pod_name)
    return _result(Outcome.DONE, job_id)


def job_pause_complete(*, job_id: int, log_tail: str) -> bool:
    """The pod of a pausing job exited: the job is paused at its latest checkpoint."""
    job = Job.objects.get(pk=job_id)
    note = f"Paused at step {job.checkpoint_step}" if job.checkpoint_path else "Paused"
    return transition(
        job_id=job_id, to=S.PAUSED, expected=[S.PAUSING], message=note, log_tail=log_tail
    )


@transaction.atomic
def job_resume(*, job_id: int) -> ActionResult:
    """Queue a paused job again from its latest checkpoint, behind the resume gate."""
    job = Job.objects.select_for_update().select_related("organization").get(pk=job_id)
    if job.status in RESUMED:
        return ActionResult(Outcome.ALREADY, job)
    if job.status != S.PAUSED:
        raise _refused(job, "resumed")
    gate = resume_gate(job, balance_micros=job.organization.balance_micros)
    if not gate.open:
        raise BalanceTooLow(gate.reason)
    transition(
        job_id=job.pk,
        to=S.QUEUED,
        expected=[S.PAUSED],
        message=f"Resumed from step {job.checkpoint_step}"
        if job.checkpoint_path
        else "Resumed from the start (no checkpoint was written)",
        pause_reason="",
        status_reason="",
    )
    enqueue("finetune.launch_job", job.pk)
    return _result(Outcome.DONE, job_id)


@transaction.atomic
def job_cancel(*, job_id: int, note: str = "Cancelled by you") -> ActionResult:
    """Stop for good. A job without a running pod is cancelled at once; one with a pod is
    `cancelling` until the pod is gone. The meter is settled now either way."""
    job = _locked(job_id)
    if job.status in (S.CANCELLING, S.CANCELLED):
        return ActionResult(Outcome.ALREADY, job)
    if job.status in CANCEL_AT_ONCE:
        transition(
            job_id=job_id,
            to=S.CANCELLED,
            expected=[job.status],
            message="Cancelled",
            retention_until=_retention_until(),
            status_reason=note[:300],
        )
        return _result(Outcome.DONE, job_id)
    if job.status not in CANCELLABLE:
        raise _refused(job, "cancelled")
    transition(
        job_id=job_id,
        to=S.CANCELLING,
        expected=[job.status],
        message="Cancelling",
        stop_requested_at=timezone.now(),
        status_reason=note[:300],
    )
    job_meter_settle(job)
    enqueue("finetune.stop_pod", job.pk, job.pod_name)
    return _result(Outcome.DONE, job_id)


def job_cancel_complete(*, job_id: int, log_tail: str) -> bool:
    """The pod of a cancelling job exited: the job is cancelled, its artifacts retained."""
    return transition(
        job_id=job_id,
        to=S.CANCELLED,
        expected=[S.CANCELLING],
        message="Cancelled",
        log_tail=log_tail,
        retention_until=_retention_until(),
    )


def job_fail(*, job_id: int, error_class: str, message: str, log_tail: str = "") -> bool:
    """Fail a live or paused job with an error class and the reason; settles its meter.
    Returns whether this call failed it (False: it had already ended)."""
    with transaction.atomic():
        won = transition(
            job_id=job_id,
            to=S.FAILED,
            message=f"Failed ({error_class}): {message}"[:500],
            error_class=error_class,
            status_reason=message[:300],
            log_tail=log_tail,
            retention_until=_retention_until(),
        )
        if won:
            job_meter_settle(Job.objects.get(pk=job_id))
    return won


def job_retry(*, job_id: int, message: str) -> bool:
    """Queue a job whose pod was lost (evicted) again from its latest checkpoint."""
    job = Job.objects.get(pk=job_id)
    return transition(
        job_id=job_id,
        to=S.QUEUED,
        expected=[job.status],
        message=message,
        automatic_retries=job.automatic_retries + 1,
    )


@transaction.atomic
def job_mark_failed(*, job_id: int, message: str) -> ActionResult:
    """Fail a stuck job by hand (operators): settle its meter and stop its pod, if any."""
    job = _locked(job_id)
    if job.status == S.FAILED:
        return ActionResult(Outcome.ALREADY, job)
    if job.status not in ALLOWED[S.FAILED]:
        raise _refused(job, "marked failed")
    log_tail = job.log_tail
    if job.pod_name:
        # The pod is stuck: its backend may be too, and must not block the fail.
        with contextlib.suppress(Exception):
            log_tail = "\n".join(pod_backend().logs(job.pod_name, tail=40)) or log_tail
    job_fail(job_id=job_id, error_class="operator", message=message, log_tail=log_tail)
    if job.pod_name:
        enqueue("finetune.stop_pod", job.pk, job.pod_name)
    return _result(Outcome.DONE, job_id)
