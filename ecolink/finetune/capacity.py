"""Region capacity: a starting or running job holds its GPUs in its region until it ends."""

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db.models import Sum
from django.utils import timezone

from ecolink.catalog.models import RegionCapacity
from ecolink.finetune.lifecycle import POD_STATUSES
from ecolink.finetune.models import Job


@dataclass(frozen=True)
class Capacity:
    total: int
    in_use: int
    requested: int
    # When the GPUs are not free now: roughly when enough of them will be.
    wait_seconds: int | None

    @property
    def free(self) -> int:
        return max(0, self.total - self.in_use)

    @property
    def available(self) -> bool:
        return self.free >= self.requested


def region_capacity(
    *, region_id: int, gpu_type_id: int, requested: int, now: datetime | None = None
) -> Capacity:
    total = (
        RegionCapacity.objects.filter(region_id=region_id, gpu_type_id=gpu_type_id)
        .values_list("total_gpus", flat=True)
        .first()
    ) or 0
    holding = Job.objects.filter(
        region_id=region_id, gpu_type_id=gpu_type_id, status__in=POD_STATUSES
    )
    in_use = holding.aggregate(n=Sum("gpu_count"))["n"] or 0
    wait = None
    if total - in_use < requested:
        wait = _estimated_wait(holding, total - in_use, requested, total, now or timezone.now())
    return Capacity(total=total, in_use=in_use, requested=requested, wait_seconds=wait)


def _estimated_wait(holding, free, requested, total, now) -> int | None:
    """Walk the running jobs by their expected end until enough GPUs are free."""
    if requested > total:
        return None  # never: the region does not have that many
    ends = []
    for started, created, seconds, count in holding.values_list(
        "started_at", "created_at", "estimate_seconds_high", "gpu_count"
    ):
        end = (started or created) + timedelta(seconds=seconds)
        ends.append((end, count))
    for end, count in sorted(ends):
        free += count
        if free >= requested:
            return max(60, int((end - now).total_seconds()))
    return None
