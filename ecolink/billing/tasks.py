"""Thin tasks for money: safe to run twice (every charge has its unique ledger key)."""

from celery import shared_task

from ecolink.billing import meter
from ecolink.enqueue import enqueue


@shared_task(name="billing.meter_tick", time_limit=60, soft_time_limit=50)
def meter_tick() -> None:
    """Charge the started minutes of every live session; jobs whose organization can't
    pay their next minute are paused (by the fine-tuning app's own task)."""
    for job_id in meter.meter_tick().jobs_to_pause:
        enqueue("finetune.pause_for_balance", job_id)
