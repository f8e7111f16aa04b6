"""Thin Celery tasks: each loads state by id, calls one service, and is safe to run twice."""

from celery import shared_task


@shared_task(name="ecolink.ping", time_limit=10, soft_time_limit=5)
def ping(value: str) -> str:
    """Round-trip check used by the health page and the worker smoke test."""
    from django.core.cache import cache

    cache.set(f"ping:{value}", "pong", timeout=60)
    return "pong"


@shared_task(name="finetune.launch_job", time_limit=120, soft_time_limit=100)
def launch_job(job_id: int) -> None:
    """Start the pod for a queued job (or leave it queued until capacity frees)."""
    from ecolink.finetune.control import job_launch

    job_launch(job_id=job_id)


@shared_task(name="finetune.stop_pod", time_limit=60, soft_time_limit=50)
def stop_pod(job_id: int, pod_name: str) -> None:
    """Send the pod SIGTERM; it checkpoints and exits, the reconciler takes it from there."""
    from django.conf import settings

    from ecolink.finetune.control import pod_backend

    pod_backend().request_stop(pod_name, settings.POD_STOP_GRACE_SECONDS)


@shared_task(name="finetune.reconcile", time_limit=120, soft_time_limit=100)
def reconcile() -> None:
    from ecolink.finetune.reconcile import jobs_reconcile

    jobs_reconcile()


@shared_task(name="finetune.retention", time_limit=600, soft_time_limit=540)
def retention() -> None:
    from ecolink.finetune.control import artifacts_retention_sweep

    artifacts_retention_sweep()


@shared_task(name="billing.meter_tick", time_limit=60, soft_time_limit=50)
def meter_tick() -> None:
    """Charge the started minutes of every live session; pause jobs that can't pay on."""
    from ecolink.billing.meter import meter_tick as tick
    from ecolink.finetune.control import job_pause

    for job_id in tick().jobs_to_pause:
        job_pause(job_id=job_id, reason="balance")


@shared_task(name="datasets.validate", time_limit=1860, soft_time_limit=1800)
def validate_dataset(dataset_id: int) -> None:
    """Stream-validate an uploaded dataset; a missing or already settled one is a no-op."""
    from ecolink.datasets.services import dataset_validate

    dataset_validate(dataset_id=dataset_id)
