"""What the operator console reads: capacity, queue, money and accuracy, each in a few
set-based queries whatever the number of jobs or organizations."""

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db.models import Count, F, IntegerField, Min, OuterRef, Q, QuerySet, Subquery, Sum
from django.db.models.functions import Coalesce, TruncHour

from ecolink.accounts.models import Organization
from ecolink.billing.models import BillingSession, LedgerEntry
from ecolink.catalog.models import RegionCapacity
from ecolink.finetune.lifecycle import POD_STATUSES
from ecolink.finetune.models import Job

S = Job.Status
# What customers pay for: GPU minutes, their settlements, and inference tokens.
REVENUE_KINDS = (LedgerEntry.Kind.METER, LedgerEntry.Kind.SETTLE, LedgerEntry.Kind.INFERENCE)


def organizations_with_ledger_sum() -> QuerySet[Organization]:
    """Organizations annotated with the sum of their entries (`ledger_sum`) and whether the
    cached balance disagrees with it (`balance_mismatch`): one query for the whole list."""
    sums = (
        LedgerEntry.objects.filter(organization=OuterRef("pk"))
        .order_by()
        .values("organization")
        .annotate(total=Sum("amount_micros"))
        .values("total")
    )
    return Organization.objects.annotate(
        ledger_sum=Coalesce(Subquery(sums), 0, output_field=IntegerField()),
    ).annotate(balance_mismatch=~Q(balance_micros=F("ledger_sum")))


def mismatched_organizations() -> QuerySet[Organization]:
    return organizations_with_ledger_sum().exclude(balance_micros=F("ledger_sum"))


def job_bill_subquery() -> Subquery:
    """What a job has been charged so far, over all its pod runs (its billing sessions)."""
    return Subquery(
        BillingSession.objects.filter(job=OuterRef("pk"))
        .order_by()
        .values("job")
        .annotate(total=Sum("charged_micros"))
        .values("total"),
        output_field=IntegerField(),
    )


@dataclass(frozen=True)
class PoolUse:
    region: str
    gpu_type: str
    total: int
    in_use: int

    @property
    def free(self) -> int:
        return max(0, self.total - self.in_use)


def gpu_pools() -> list[PoolUse]:
    """GPUs in use and free per region and type. In use means held by a job in a pod
    status, the same rule `finetune.capacity` launches by."""
    held = {
        (r, g): n
        for r, g, n in Job.objects.filter(status__in=POD_STATUSES)
        .values("region_id", "gpu_type_id")
        .annotate(n=Sum("gpu_count"))
        .values_list("region_id", "gpu_type_id", "n")
    }
    rows = RegionCapacity.objects.select_related("region", "gpu_type").order_by(
        "region__slug", "gpu_type__hourly_rate_micros"
    )
    return [
        PoolUse(
            region=c.region.display_name,
            gpu_type=c.gpu_type.display_name,
            total=c.total_gpus,
            in_use=held.get((c.region_id, c.gpu_type_id), 0),
        )
        for c in rows
    ]


@dataclass(frozen=True)
class Queue:
    count: int
    oldest_wait_seconds: int | None


def queue_summary(now: datetime) -> Queue:
    # A queued job's last transition (approve, resume or retry) set its `updated_at`.
    row = Job.objects.filter(status=S.QUEUED).aggregate(n=Count("pk"), oldest=Min("updated_at"))
    wait = int((now - row["oldest"]).total_seconds()) if row["oldest"] else None
    return Queue(count=row["n"], oldest_wait_seconds=wait)


def jobs_by_status() -> list[tuple[str, int]]:
    counts = dict(
        Job.objects.order_by().values("status").annotate(n=Count("pk")).values_list("status", "n")
    )
    return [(label, counts[value]) for value, label in S.choices if counts.get(value)]


def revenue_by_hour(now: datetime, hours: int = 24) -> list[tuple[datetime, int]]:
    """Revenue (GPU minutes, settlements, inference) per hour, oldest first, empty hours kept."""
    end = now.replace(minute=0, second=0, microsecond=0) + timedelta(hours=1)
    start = end - timedelta(hours=hours)
    charged = dict(
        LedgerEntry.objects.filter(kind__in=REVENUE_KINDS, created_at__gte=start)
        .annotate(hour=TruncHour("created_at"))
        .order_by()
        .values("hour")
        .annotate(total=Sum("amount_micros"))
        .values_list("hour", "total")
    )
    hours_list = [start + timedelta(hours=i) for i in range(hours)]
    return [(h, -charged.get(h, 0)) for h in hours_list]


def failures_by_class(now: datetime, days: int = 7) -> list[tuple[str, int]]:
    return list(
        Job.objects.filter(status=S.FAILED, finished_at__gte=now - timedelta(days=days))
        .order_by()
        .values("error_class")
        .annotate(n=Count("pk"))
        .order_by("-n", "error_class")
        .values_list("error_class", "n")
    )


@dataclass(frozen=True)
class Accuracy:
    jobs: int
    inside: int
    below: int
    above: int
    # Mean of (bill − low) / (high − low) over the jobs billed inside their range.
    mean_position: float | None
    # Positions of the jobs inside, for the chart (0 = low end, 1 = high end).
    positions: list[float]

    @property
    def share_inside(self) -> float | None:
        return self.inside / self.jobs if self.jobs else None


def estimate_accuracy(now: datetime, days: int = 30) -> Accuracy:
    """How the bills of jobs that finished training landed against their estimates."""
    rows = (
        Job.objects.filter(status=S.REGISTERED, finished_at__gte=now - timedelta(days=days))
        .annotate(bill=job_bill_subquery())
        .values_list("bill", "estimate_low_micros", "estimate_high_micros")
    )
    inside = below = above = 0
    positions = []
    for bill, low, high in rows:
        bill = bill or 0
        if bill < low:
            below += 1
        elif bill > high:
            above += 1
        else:
            inside += 1
            positions.append((bill - low) / (high - low) if high > low else 0.5)
    mean = sum(positions) / len(positions) if positions else None
    return Accuracy(
        jobs=inside + below + above,
        inside=inside,
        below=below,
        above=above,
        mean_position=mean,
        positions=positions,
    )
