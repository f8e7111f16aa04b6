"""The reconciler: compares every live job with its pod and settles how each run ended.

A pod that exited 0 after the trainer said `finished` gets its adapter registered. One that
exited after a pause or cancel request ends `paused` or `cancelled`. Anything else is a
failure with an error class and the pod's last log lines, and never registers an adapter,
except an eviction with a complete checkpoint, which is queued again from it for free.
Queued jobs start here too, oldest first, as capacity frees up.
"""

from datetime import timedelta

from django.conf import settings
from django.utils import timezone

from ecolink.finetune.actions import (
    job_cancel_complete,
    job_fail,
    job_launch,
    job_meter_settle,
    job_pause_complete,
    job_register,
    job_retry,
)
from ecolink.finetune.lifecycle import POD_STATUSES
from ecolink.finetune.models import Job
from ecolink.finetune.pods import pod_backend
from worker.pods.base import PodStatus
from worker.trainer import exit_codes

S = Job.Status
# Past the grace period and this margin, a pod that ignores SIGTERM is killed.
STOP_MARGIN = timedelta(seconds=30)


def classify(status: PodStatus, trainer_class: str) -> str:
    """The error class of a failed run: what the backend saw beats the trainer's report,
    which beats the exit code."""
    if status.reason in ("oom", "evicted", "node_lost", "deadline"):
        return status.reason
    if trainer_class:
        return trainer_class
    return exit_codes.ERROR_CLASSES.get(status.exit_code, "internal")


def jobs_reconcile() -> None:
    backend = pod_backend()
    live = Job.objects.filter(status__in=[*POD_STATUSES, S.TRAINED_PENDING_REGISTER]).exclude(
        pod_name=""
    )
    for job in live:
        status = backend.status(job.pod_name)
        if not status.finished:
            _force_stop_if_overdue(job, backend)
            continue
        log_tail = "\n".join(backend.logs(job.pod_name, tail=40))
        _conclude(job, status, log_tail)
        backend.delete(job.pod_name)
    _start_queued()


def _force_stop_if_overdue(job: Job, backend) -> None:
    if job.status in (S.PAUSING, S.CANCELLING) and job.stop_requested_at:
        grace = timedelta(seconds=settings.POD_STOP_GRACE_SECONDS)
        if timezone.now() > job.stop_requested_at + grace + STOP_MARGIN:
            backend.delete(job.pod_name)


def _conclude(job: Job, status: PodStatus, log_tail: str) -> None:
    job_meter_settle(job)
    code = status.exit_code
    if job.status == S.TRAINED_PENDING_REGISTER:
        if code == exit_codes.OK:
            # Here, not in a task of its own: the pod is deleted below, and a job left
            # waiting for registration without its pod would read as lost on the next pass.
            job_register(job_id=job.pk)
        else:
            job_fail(
                job_id=job.pk,
                error_class=classify(status, job.error_class),
                message=f"The pod exited with {code} after training",
                log_tail=log_tail,
            )
    elif job.status == S.PAUSING:
        job_pause_complete(job_id=job.pk, log_tail=log_tail)
    elif job.status == S.CANCELLING:
        job_cancel_complete(job_id=job.pk, log_tail=log_tail)
    elif (
        _evicted(status)
        and job.checkpoint_path
        and (job.automatic_retries < settings.MAX_AUTOMATIC_RETRIES)
    ):
        job_retry(
            job_id=job.pk,
            message=f"Evicted; retrying from step {job.checkpoint_step} at no charge "
            "for the lost time",
        )
    else:
        error_class = "evicted" if _evicted(status) else classify(status, job.error_class)
        message = (
            "The pod exited without finishing"
            if code == exit_codes.OK
            else f"The pod ended with exit code {code}"
            if code is not None
            else "The pod disappeared"
        )
        job_fail(job_id=job.pk, error_class=error_class, message=message, log_tail=log_tail)


def _evicted(status: PodStatus) -> bool:
    # A SIGTERM nobody asked for (node drain, preemption) ends with the resumable code.
    return status.reason == "evicted" or status.exit_code == exit_codes.RESUMABLE


def _start_queued() -> None:
    """Launch queued jobs oldest first; a pool that can't take its oldest waits for it."""
    blocked: set[tuple[int, int]] = set()
    for job_id, region, gpu in (
        Job.objects.filter(status=S.QUEUED)
        .order_by("created_at")
        .values_list("pk", "region_id", "gpu_type_id")
    ):
        if (region, gpu) in blocked:
            continue
        if not job_launch(job_id=job_id):
            blocked.add((region, gpu))
