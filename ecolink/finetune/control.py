"""Running jobs: launch a pod, pause, resume, cancel, and register what a run produced.

Every status change goes through `lifecycle.transition`; every pod call goes through the
configured `PodBackend`, after the transaction that decided it has committed.
"""

import contextlib
import hashlib
import json
import secrets
from datetime import timedelta
from pathlib import Path

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from ecolink.billing.meter import session_settle
from ecolink.billing.models import BillingSession
from ecolink.billing.templatetags.money import dollars
from ecolink.catalog.models import RegionCapacity
from ecolink.finetune.capacity import region_capacity
from ecolink.finetune.lifecycle import transition
from ecolink.finetune.models import Job
from ecolink.finetune.runconfig import job_artifacts_dir
from ecolink.registry.models import RegisteredAdapter
from worker.pods import PodBackend, PodSpec, get_backend
from worker.trainer.config import JOB_TOKEN_ENV, RunConfig

S = Job.Status


# A job with no pod running is cancelled at once; one with a pod goes through `cancelling`.
CANCEL_AT_ONCE = (S.QUEUED, S.PAUSED)


class ActionRefused(Exception):
    """The action can't be taken now; the message says why, for the user."""


class BalanceTooLow(ActionRefused):
    """Resume refused: the balance doesn't cover the estimated cost of the steps left."""


def pod_backend() -> PodBackend:
    return get_backend(settings.POD_BACKEND, local_state_dir=str(settings.LOCAL_PODS_DIR))


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def events_url(job_id: int) -> str:
    return f"{settings.INTERNAL_BASE_URL.rstrip('/')}/internal/jobs/{job_id}/events"


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


def current_session(job: Job) -> BillingSession | None:
    return BillingSession.objects.filter(job=job, run=job.run_number, ended_at__isnull=True).first()


def _stop_pod_after_commit(job: Job) -> None:
    from worker.tasks import stop_pod

    transaction.on_commit(lambda: stop_pod.delay(job.pk, job.pod_name))


@transaction.atomic
def job_pause(*, job_id: int, reason: str) -> bool:
    """Ask the pod to checkpoint and exit; the meter stops now. `reason`: user | balance."""
    message = "Balance reached zero" if reason == "balance" else "Paused by you"
    won = transition(
        job_id=job_id,
        to=S.PAUSING,
        message=f"Pausing: {message.lower()}",
        pause_reason=reason,
        stop_requested_at=timezone.now(),
        status_reason=message,
    )
    if won:
        job = Job.objects.get(pk=job_id)
        job_meter_settle(job)
        _stop_pod_after_commit(job)
    return won


def job_meter_settle(job: Job) -> None:
    """End the billing session of the job's current pod run, charging what it owes."""
    session = current_session(job)
    if session is not None:
        session_settle(session_id=session.pk)


def remaining_estimate_micros(job: Job) -> int:
    """The upper estimate scaled to the steps left after the latest checkpoint."""
    if not job.total_steps:
        return job.estimate_high_micros
    left = max(0, job.total_steps - job.checkpoint_step) / job.total_steps
    return int(job.estimate_high_micros * left)


@transaction.atomic
def job_resume(*, job_id: int) -> Job:
    job = Job.objects.select_for_update().select_related("organization").get(pk=job_id)
    if job.status != S.PAUSED:
        if job.status in (S.QUEUED, S.STARTING, S.TRAINING):
            return job  # a repeated click: already resumed
        raise ActionRefused(f"A {job.get_status_display().lower()} job can't be resumed.")
    needed = remaining_estimate_micros(job)
    if job.organization.balance_micros < needed:
        raise BalanceTooLow(
            f"Your balance ({dollars(job.organization.balance_micros)}) is below the "
            f"estimated cost of the remaining steps ({dollars(needed)}): top up first."
        )
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
    from worker.tasks import launch_job

    transaction.on_commit(lambda: launch_job.delay(job.pk))
    job.refresh_from_db()
    return job


@transaction.atomic
def job_cancel(*, job_id: int) -> bool:
    """Stop for good. A job without a running pod is cancelled at once; one with a pod is
    `cancelling` until the pod is gone. The meter is settled now either way."""
    retention = timezone.now() + timedelta(days=settings.RETENTION_DAYS)
    if transition(
        job_id=job_id,
        to=S.CANCELLED,
        expected=CANCEL_AT_ONCE,
        message="Cancelled",
        retention_until=retention,
        status_reason="Cancelled by you",
    ):
        return True
    won = transition(
        job_id=job_id,
        to=S.CANCELLING,
        message="Cancelling",
        stop_requested_at=timezone.now(),
    )
    if won:
        job = Job.objects.get(pk=job_id)
        job_meter_settle(job)
        _stop_pod_after_commit(job)
    return won


def job_fail(*, job_id: int, error_class: str, message: str, log_tail: str = "") -> bool:
    with transaction.atomic():
        won = transition(
            job_id=job_id,
            to=S.FAILED,
            message=f"Failed ({error_class}): {message}"[:500],
            error_class=error_class,
            status_reason=message[:300],
            log_tail=log_tail,
            retention_until=timezone.now() + timedelta(days=settings.RETENTION_DAYS),
        )
        if won:
            job_meter_settle(Job.objects.get(pk=job_id))
    return won


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


def artifacts_retention_sweep() -> int:
    """Delete the artifacts of cancelled and failed jobs whose retention has run out.

    Registered adapters are kept: they were promoted by registration.
    """
    import shutil

    expired = Job.objects.filter(
        status__in=[S.CANCELLED, S.FAILED], retention_until__lt=timezone.now()
    ).exclude(checkpoint_path="", adapter_path="")
    count = 0
    for job in expired:
        shutil.rmtree(job_artifacts_dir(job.pk), ignore_errors=True)
        Job.objects.filter(pk=job.pk).update(checkpoint_path="", adapter_path="")
        count += 1
    return count


# --- Operator actions (the operator console calls these through `ops.services`).

# Statuses whose artifacts wait for the retention sweep.
RETAINED_STATUSES = (S.CANCELLED, S.FAILED)


@transaction.atomic
def job_mark_failed(*, job_id: int, message: str) -> bool:
    """Fail a stuck job by hand: settle its meter and stop its pod, if it has one."""
    job = Job.objects.get(pk=job_id)
    log_tail = job.log_tail
    if job.pod_name:
        # The pod is stuck: its backend may be too, and must not block the fail.
        with contextlib.suppress(Exception):
            log_tail = "\n".join(pod_backend().logs(job.pod_name, tail=40)) or log_tail
    won = job_fail(job_id=job_id, error_class="operator", message=message, log_tail=log_tail)
    if won and job.pod_name:
        _stop_pod_after_commit(job)
    return won


@transaction.atomic
def job_extend_retention(*, job_id: int, days: int) -> Job:
    """Keep a cancelled or failed job's last checkpoint `days` longer than it would be."""
    job = Job.objects.select_for_update().get(pk=job_id)
    if job.status not in RETAINED_STATUSES:
        raise ActionRefused("Only a cancelled or failed job's artifacts have a retention date.")
    if not (job.checkpoint_path or job.adapter_path):
        raise ActionRefused("This job's artifacts have already been deleted.")
    start = max(job.retention_until or timezone.now(), timezone.now())
    job.retention_until = start + timedelta(days=days)
    Job.objects.filter(pk=job.pk).update(retention_until=job.retention_until)
    return job
