"""The job lifecycle: every status change goes through `transition`, a conditional update.

    queued → starting → training → evaluating → trained_pending_register → registered
    pausing → paused → queued (resume);  cancelling → cancelled;  failed from any live state

`Job.objects.filter(pk=…, status__in=expected).update(status=new)` touches one row only if
the job is still where the caller thinks it is: of two workers or two clicks, one wins,
and the loser learns it from the return value. Each win is recorded as a job event.
"""

from collections.abc import Iterable

from django.db import transaction
from django.utils import timezone

from ecolink.finetune.models import Job, JobEvent

S = Job.Status
# Statuses in which a pod may be running and billing.
POD_STATUSES = (S.STARTING, S.TRAINING, S.EVALUATING, S.PAUSING, S.CANCELLING)
LIVE_STATUSES = (S.QUEUED, *POD_STATUSES, S.TRAINED_PENDING_REGISTER)
TERMINAL_STATUSES = (S.REGISTERED, S.CANCELLED, S.FAILED)

ALLOWED: dict[str, tuple[str, ...]] = {
    S.STARTING: (S.QUEUED,),
    S.TRAINING: (S.STARTING, S.EVALUATING),
    S.EVALUATING: (S.STARTING, S.TRAINING),
    S.TRAINED_PENDING_REGISTER: (S.STARTING, S.TRAINING, S.EVALUATING),
    S.REGISTERED: (S.TRAINED_PENDING_REGISTER,),
    S.PAUSING: (S.STARTING, S.TRAINING, S.EVALUATING),
    S.PAUSED: (S.PAUSING,),
    S.QUEUED: (S.PAUSED, S.STARTING, S.TRAINING, S.EVALUATING),  # resume; automatic retry
    S.CANCELLING: (S.STARTING, S.TRAINING, S.EVALUATING, S.PAUSING),
    S.CANCELLED: (S.QUEUED, S.PAUSED, S.CANCELLING),
    S.FAILED: (*LIVE_STATUSES, S.PAUSED),
}


class TransitionNotAllowed(ValueError):
    pass


def transition(
    *,
    job_id: int,
    to: str,
    expected: Iterable[str] | None = None,
    message: str = "",
    data: dict | None = None,
    **fields,
) -> bool:
    """Move the job to `to` if it is in one of `expected` (default: every status allowed to
    reach `to`). Returns whether this call won. Extra `fields` are written with the status.
    """
    allowed = ALLOWED[to]
    expected = tuple(expected) if expected is not None else allowed
    if not set(expected) <= set(allowed):
        raise TransitionNotAllowed(f"{sorted(set(expected) - set(allowed))} → {to}")
    now = timezone.now()
    if to in TERMINAL_STATUSES or to == S.PAUSED:
        fields.setdefault("finished_at", now)
    with transaction.atomic():
        won = Job.objects.filter(pk=job_id, status__in=expected).update(
            status=to, updated_at=now, **fields
        )
        if won:
            JobEvent.objects.create(
                job_id=job_id,
                kind="status",
                message=message or f"Status: {to}",
                data={"status": to, **(data or {})},
            )
    return bool(won)


def record_event(*, job_id: int, kind: str, message: str, data: dict | None = None) -> None:
    JobEvent.objects.create(job_id=job_id, kind=kind, message=message, data=data or {})
