"""Thin tasks for jobs: each loads state by id, calls one action or service, and is safe
to run twice. Services send them by name (`ecolink.enqueue`), never by import."""

import contextlib

from celery import shared_task
from django.conf import settings

from ecolink.finetune import actions
from ecolink.finetune import reconcile as reconciler
from ecolink.finetune import retention as retention_rules
from ecolink.finetune.outcomes import ActionRefused
from ecolink.finetune.pods import pod_backend


@shared_task(name="finetune.launch_job", time_limit=120, soft_time_limit=100)
def launch_job(job_id: int) -> None:
    """Start the pod for a queued job (or leave it queued until capacity frees)."""
    actions.job_launch(job_id=job_id)


@shared_task(name="finetune.stop_pod", time_limit=60, soft_time_limit=50)
def stop_pod(job_id: int, pod_name: str) -> None:
    """Send the pod SIGTERM; it checkpoints and exits, the reconciler takes it from there."""
    pod_backend().request_stop(pod_name, settings.POD_STOP_GRACE_SECONDS)


@shared_task(name="finetune.pause_for_balance", time_limit=60, soft_time_limit=50)
def pause_for_balance(job_id: int) -> None:
    """The meter found the organization can't pay the job's next minute: pause it."""
    # A job that ended (or was cancelled) since the tick has nothing left to pause.
    with contextlib.suppress(ActionRefused):
        actions.job_pause(job_id=job_id, reason="balance")


@shared_task(name="finetune.reconcile", time_limit=120, soft_time_limit=100)
def reconcile() -> None:
    reconciler.jobs_reconcile()


@shared_task(name="finetune.retention", time_limit=600, soft_time_limit=540)
def retention() -> None:
    retention_rules.artifacts_retention_sweep()
