"""Operator actions. Each one needs a reason and writes its audit row in the same
transaction as the change it records: no audit row without the change, nor the reverse."""

import uuid
from typing import Any

from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.db.models import Model

from ecolink.billing.models import LedgerEntry
from ecolink.billing.services import ledger_post
from ecolink.catalog.models import GpuType, ThroughputEfficiency
from ecolink.finetune import control
from ecolink.finetune.control import ActionRefused
from ecolink.finetune.models import Job
from ecolink.ops.models import AuditLog

A = AuditLog.Action
# Retention may be pushed out by up to a year at a time.
MAX_RETENTION_DAYS = 365


class ReasonRequired(ActionRefused):
    def __init__(self) -> None:
        super().__init__("Give a reason: every operator action is recorded with one.")


def _reason(reason: str) -> str:
    reason = (reason or "").strip()
    if not reason:
        raise ReasonRequired()
    return reason


def audit_record(
    *,
    operator: AbstractBaseUser,
    action: str,
    target: Model,
    reason: str,
    organization_id: int | None = None,
    before: dict | None = None,
    after: dict | None = None,
) -> AuditLog:
    return AuditLog.objects.create(
        operator=operator,
        operator_name=operator.get_username(),
        action=action,
        target_type=target._meta.label_lower,
        target_id=str(target.pk),
        organization_id=organization_id,
        reason=_reason(reason),
        before=before or {},
        after=after or {},
    )


def _job_state(job: Job) -> dict[str, Any]:
    return {
        "status": job.status,
        "status_reason": job.status_reason,
        "retention_until": job.retention_until.isoformat() if job.retention_until else None,
    }


def _job_action(*, operator, job_id: int, reason: str, action: str, run) -> Job:
    """Lock the job, run `run(job)` (which raises ActionRefused when it can't act), and
    record the before and after states."""
    reason = _reason(reason)
    with transaction.atomic():
        job = Job.objects.select_for_update().get(pk=job_id)
        before = _job_state(job)
        run(job)
        job.refresh_from_db()
        audit_record(
            operator=operator,
            action=action,
            target=job,
            reason=reason,
            organization_id=job.organization_id,
            before=before,
            after=_job_state(job),
        )
    return job


def _refused_unless(won: bool, job: Job, verb: str) -> None:
    if not won:
        raise ActionRefused(f"A {job.get_status_display().lower()} job can't be {verb}.")


def operator_job_cancel(*, operator: AbstractBaseUser, job_id: int, reason: str) -> Job:
    def run(job: Job) -> None:
        _refused_unless(control.job_cancel(job_id=job.pk), job, "cancelled")
        Job.objects.filter(pk=job.pk).update(
            status_reason=f"Cancelled by an operator: {reason}"[:300]
        )

    return _job_action(
        operator=operator, job_id=job_id, reason=reason, action=A.JOB_CANCEL, run=run
    )


def operator_job_pause(*, operator: AbstractBaseUser, job_id: int, reason: str) -> Job:
    def run(job: Job) -> None:
        _refused_unless(control.job_pause(job_id=job.pk, reason="operator"), job, "paused")
        Job.objects.filter(pk=job.pk).update(status_reason=f"Paused by an operator: {reason}"[:300])

    return _job_action(operator=operator, job_id=job_id, reason=reason, action=A.JOB_PAUSE, run=run)


def operator_job_resume(*, operator: AbstractBaseUser, job_id: int, reason: str) -> Job:
    def run(job: Job) -> None:
        if job.status != Job.Status.PAUSED:
            _refused_unless(False, job, "resumed")
        control.job_resume(job_id=job.pk)

    return _job_action(
        operator=operator, job_id=job_id, reason=reason, action=A.JOB_RESUME, run=run
    )


def operator_job_mark_failed(*, operator: AbstractBaseUser, job_id: int, reason: str) -> Job:
    def run(job: Job) -> None:
        won = control.job_mark_failed(
            job_id=job.pk, message=f"Marked failed by an operator: {reason}"
        )
        _refused_unless(won, job, "marked failed")

    return _job_action(
        operator=operator, job_id=job_id, reason=reason, action=A.JOB_MARK_FAILED, run=run
    )


def operator_job_extend_retention(
    *, operator: AbstractBaseUser, job_id: int, days: int, reason: str
) -> Job:
    if not 1 <= days <= MAX_RETENTION_DAYS:
        raise ActionRefused(f"Extend retention by 1 to {MAX_RETENTION_DAYS} days.")

    def run(job: Job) -> None:
        control.job_extend_retention(job_id=job.pk, days=days)

    return _job_action(
        operator=operator, job_id=job_id, reason=reason, action=A.JOB_EXTEND_RETENTION, run=run
    )


# Everything the job admin offers, by the name its URLs and buttons use.
JOB_ACTIONS = {
    "cancel": operator_job_cancel,
    "pause": operator_job_pause,
    "resume": operator_job_resume,
    "mark_failed": operator_job_mark_failed,
}


@transaction.atomic
def balance_adjust(
    *, operator: AbstractBaseUser, organization_id: int, amount_micros: int, reason: str
) -> LedgerEntry:
    """Credit (positive) or debit (negative) an organization with a new ledger entry.

    Past entries never change: a correction is always an entry of its own.
    """
    reason = _reason(reason)
    if not isinstance(amount_micros, int) or isinstance(amount_micros, bool) or not amount_micros:
        raise ActionRefused("The amount must be a non-zero whole number of micro-dollars.")
    name = operator.get_username()
    entry = ledger_post(
        organization_id=organization_id,
        amount_micros=amount_micros,
        key=f"adjust:{uuid.uuid4()}",
        kind=LedgerEntry.Kind.ADJUSTMENT,
        description=f"Adjustment by {name}: {reason}"[:300],
    )
    assert entry is not None  # a fresh uuid key is never a duplicate
    audit_record(
        operator=operator,
        action=A.BALANCE_CREDIT if amount_micros > 0 else A.BALANCE_DEBIT,
        target=entry,
        reason=reason,
        organization_id=organization_id,
        before={"balance_micros": entry.balance_after_micros - amount_micros},
        after={"balance_micros": entry.balance_after_micros, "ledger_key": entry.key},
    )
    return entry


@transaction.atomic
def efficiency_update(
    *, operator: AbstractBaseUser, gpu_type_id: int, method: str, efficiency: float, reason: str
) -> ThroughputEfficiency:
    """Set the estimator's efficiency for one GPU type and method (a share of peak)."""
    reason = _reason(reason)
    if not 0 < efficiency <= 1:
        raise ActionRefused("The efficiency is a share of peak: above 0 and at most 1.")
    gpu = GpuType.objects.get(pk=gpu_type_id)
    row = (
        ThroughputEfficiency.objects.select_for_update().filter(gpu_type=gpu, method=method).first()
    )
    before = {"efficiency": row.efficiency if row else None}
    row, _ = ThroughputEfficiency.objects.update_or_create(
        gpu_type=gpu, method=method, defaults={"efficiency": efficiency}
    )
    audit_record(
        operator=operator,
        action=A.EFFICIENCY_UPDATE,
        target=row,
        reason=reason,
        before={**before, "gpu_type": gpu.slug, "method": method},
        after={"efficiency": efficiency, "gpu_type": gpu.slug, "method": method},
    )
    return row


@transaction.atomic
def gpu_rate_change(
    *, operator: AbstractBaseUser, gpu_type_id: int, hourly_rate_micros: int, reason: str
) -> GpuType:
    """Change a GPU type's hourly rate. The meter reads the rate when it charges a minute,
    so the change applies to minutes charged from now on; past entries keep theirs."""
    reason = _reason(reason)
    if hourly_rate_micros <= 0:
        raise ActionRefused("The hourly rate must be above zero.")
    gpu = GpuType.objects.select_for_update().get(pk=gpu_type_id)
    before = {"hourly_rate_micros": gpu.hourly_rate_micros}
    GpuType.objects.filter(pk=gpu.pk).update(hourly_rate_micros=hourly_rate_micros)
    gpu.hourly_rate_micros = hourly_rate_micros
    audit_record(
        operator=operator,
        action=A.GPU_RATE_CHANGE,
        target=gpu,
        reason=reason,
        before=before,
        after={"hourly_rate_micros": hourly_rate_micros},
    )
    return gpu
