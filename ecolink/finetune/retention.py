"""How long a cancelled or failed job's artifacts are kept, and the sweep that deletes
them after. A registered adapter is kept: registration promoted it."""

import shutil
from datetime import timedelta

from django.db import transaction
from django.utils import timezone

from ecolink.finetune.models import Job
from ecolink.finetune.outcomes import ActionRefused
from ecolink.finetune.runconfig import job_artifacts_dir

S = Job.Status
# Statuses whose artifacts wait for the retention sweep.
RETAINED_STATUSES = (S.CANCELLED, S.FAILED)


def artifacts_retention_sweep() -> int:
    """Delete the artifacts of cancelled and failed jobs whose retention has run out."""
    expired = Job.objects.filter(
        status__in=RETAINED_STATUSES, retention_until__lt=timezone.now()
    ).exclude(checkpoint_path="", adapter_path="")
    count = 0
    for job in expired:
        shutil.rmtree(job_artifacts_dir(job.pk), ignore_errors=True)
        Job.objects.filter(pk=job.pk).update(checkpoint_path="", adapter_path="")
        count += 1
    return count


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
