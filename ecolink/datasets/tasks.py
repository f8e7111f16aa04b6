"""Thin tasks for datasets."""

from celery import shared_task

from ecolink.datasets.services import dataset_validate


@shared_task(name="datasets.validate", time_limit=1860, soft_time_limit=1800)
def validate_dataset(dataset_id: int) -> None:
    """Stream-validate an uploaded dataset; a missing or already settled one is a no-op."""
    dataset_validate(dataset_id=dataset_id)
