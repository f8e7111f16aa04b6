"""The operator dashboard at /ops/: capacity, the queue, jobs by status, revenue, failures,
estimate accuracy and balance mismatches, read by `ops.selectors` and drawn by `ops.charts`."""

from datetime import datetime
from typing import Any

from ecolink.billing.money import dollars
from ecolink.ops import charts, selectors
from ecolink.ops.models import AuditLog


def _duration(seconds: int | None) -> str:
    if seconds is None:
        return "—"
    hours, rest = divmod(seconds, 3600)
    return f"{hours} h {rest // 60} min" if hours else f"{rest // 60} min {rest % 60} s"


def dashboard_context(now: datetime) -> dict[str, Any]:
    """Everything /ops/ shows at `now`, its charts drawn on the server."""
    pools = selectors.gpu_pools()
    queue = selectors.queue_summary(now)
    statuses = selectors.jobs_by_status()
    revenue = selectors.revenue_by_hour(now)
    failures = selectors.failures_by_class(now)
    accuracy = selectors.estimate_accuracy(now)
    buckets = [("below", accuracy.below)]
    for i in range(4):
        low, high = i / 4, (i + 1) / 4
        n = sum(1 for p in accuracy.positions if low <= p < high or (i == 3 and p == 1))
        buckets.append((f"{int(low * 100)}–{int(high * 100)}%", n))
    buckets.append(("above", accuracy.above))
    context = {
        "now": now,
        "pools": pools,
        "queue": queue,
        "oldest_wait": _duration(queue.oldest_wait_seconds),
        "statuses": statuses,
        "revenue_total": sum(v for _, v in revenue),
        "failures": failures,
        "accuracy": accuracy,
        "mismatched": selectors.mismatched_organizations().count(),
        "audit": AuditLog.objects.all()[:10],
        "capacity_chart": charts.bars(
            "GPUs in use and free",
            [
                (
                    f"{p.region} · {p.gpu_type}",
                    [
                        (p.in_use, "bar-used", f"{p.in_use} in use"),
                        (p.free, "bar-free", f"{p.free} free"),
                    ],
                )
                for p in pools
            ],
        ),
        "status_chart": charts.bars(
            "Jobs by status", [(label, [(n, "bar", f"{n} {label}")]) for label, n in statuses]
        ),
        "revenue_chart": charts.columns(
            "Revenue per hour",
            [(h.strftime("%H:00"), v, dollars(v)) for h, v in revenue],
            every=6,
        ),
        "failure_chart": charts.bars(
            "Failures by error class",
            [(cls or "unclassified", [(n, "bar-bad", f"{n} failed")]) for cls, n in failures],
        ),
        "accuracy_chart": charts.columns(
            "Where bills landed", [(label, n, str(n)) for label, n in buckets]
        ),
    }
    return context
