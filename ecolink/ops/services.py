"""Operator actions. Each one needs a reason and writes its audit row in the same
transaction as the change it records: no audit row without the change, nor the reverse."""

import uuid
from typing import Any

from django.contrib.auth.models import User
from django.db import transaction
from django.db.models import Model

from ecolink.billing.models import LedgerEntry
from ecolink.billing.services import ledger_post
from ecolink.catalog.models import GpuType, ThroughputEfficiency
from ecolink.finetune import actions, retention
from ecolink.finetune.models import Job
from ecolink.finetune.outcomes import ActionRefused, ActionResult, Outcome
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
    operator: User,
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


def _job_action(*, operator, job_id: int, reason: str, action: str, run) -> ActionResult:
    """Lock the job, run the job action `run(job_id)`, and record the before and after
    states when it changed something. Already there is a success with nothing to audit;
    a refusal raises ActionRefused and leaves no row."""
    reason = _reason(reason)
    with transaction.atomic():
        before = _job_state(Job.objects.select_for_update().get(pk=job_id))
        result = run(job_id)
        if result.done:
            audit_record(
                operator=operator,
                action=action,
                target=result.job,
                reason=reason,
                organization_id=result.job.organization_id,
                before=before,
                after=_job_state(result.job),
            )
    return result


def operator_job_cancel(*, operator: User, job_id: int, reason: str) -> ActionResult:
    note = f"Cancelled by an operator: {reason}"
    return _job_action(
        operator=operator,
        job_id=job_id,
        reason=reason,
        action=A.JOB_CANCEL,
        run=lambda pk: actions.job_cancel(job_id=pk, note=note),
    )


def operator_job_pause(*, operator: User, job_id: int, reason: str) -> ActionResult:
    note = f"Paused by an operator: {reason}"
    return _job_action(
        operator=operator,
        job_id=job_id,
        reason=reason,
        action=A.JOB_PAUSE,
        run=lambda pk: actions.job_pause(job_id=pk, reason="operator", note=note),
    )


def operator_job_resume(*, operator: User, job_id: int, reason: str) -> ActionResult:
    return _job_action(
        operator=operator,
        job_id=job_id,
        reason=reason,
        action=A.JOB_RESUME,
        run=lambda pk: actions.job_resume(job_id=pk),
    )


def operator_job_mark_failed(*, operator: User, job_id: int, reason: str) -> ActionResult:
    message = f"Marked failed by an operator: {reason}"
    return _job_action(
        operator=operator,
        job_id=job_id,
        reason=reason,
        action=A.JOB_MARK_FAILED,
        run=lambda pk: actions.job_mark_failed(job_id=pk, message=message),
    )


def operator_job_extend_retention(*, operator: User, job_id: int, days: int, reason: str) -> Job:
    if not 1 <= days <= MAX_RETENTION_DAYS:
        raise ActionRefused(f"Extend retention by 1 to {MAX_RETENTION_DAYS} days.")

    def run(pk: int) -> ActionResult:
        return ActionResult(Outcome.DONE, retention.job_extend_retention(job_id=pk, days=days))

    return _job_action(
        operator=operator, job_id=job_id, reason=reason, action=A.JOB_EXTEND_RETENTION, run=run
    ).job


# Everything the job admin offers, by the name its URLs and buttons use.
JOB_ACTIONS = {
    "cancel": operator_job_cancel,
    "pause": operator_job_pause,
    "resume": operator_job_resume,
    "mark_failed": operator_job_mark_failed,
}


@transaction.atomic
def balance_adjust(
    *, operator: User, organization_id: int, amount_micros: int, reason: str
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
    *, operator: User, gpu_type_id: int, method: str, efficiency: float, reason: str
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
    *, operator: User, gpu_type_id: int, hourly_rate_micros: int, reason: str
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
