"""`make bench-meter`: one meter tick over 1,000 and 10,000 live sessions on PostgreSQL.

Builds a throwaway test database, fills it with synthetic organizations, jobs and billing
sessions, runs one tick per size and prints its time and query count. The last line is
`meter: <seconds> s for 10000 sessions, <queries> queries`.
"""

import os
import sys
import time
from datetime import timedelta
from pathlib import Path

import django

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "ecolink.settings")
django.setup()

from django.db import connection  # noqa: E402
from django.test.utils import CaptureQueriesContext  # noqa: E402
from django.utils import timezone  # noqa: E402

from ecolink.accounts.models import Organization  # noqa: E402
from ecolink.billing.meter import meter_tick  # noqa: E402
from ecolink.billing.models import BillingSession, LedgerEntry  # noqa: E402
from ecolink.billing.selectors import ledger_sum_micros  # noqa: E402
from ecolink.catalog.models import BaseModel, GpuType, Region  # noqa: E402
from ecolink.catalog.services import catalog_seed  # noqa: E402
from ecolink.datasets.models import Dataset  # noqa: E402
from ecolink.finetune.models import Job  # noqa: E402

START = 100_000_000


def populate(n: int, tag: str) -> None:
    gpu, region = GpuType.objects.get(slug="nvidia-a100-80gb"), Region.objects.get(slug="us-east")
    base = BaseModel.objects.get(hf_id="Qwen/Qwen2.5-7B-Instruct")
    orgs = Organization.objects.bulk_create(
        Organization(name=f"{tag}-{i}", slug=f"{tag}-{i}", balance_micros=START)
        for i in range(n // 2)
    )
    datasets = Dataset.objects.bulk_create(
        Dataset(organization=o, name="d", original_filename="d.jsonl", file="d") for o in orgs
    )
    jobs = Job.objects.bulk_create(
        Job(
            organization=orgs[i % len(orgs)],
            name=f"j{i}",
            dataset=datasets[i % len(orgs)],
            base_model=base,
            gpu_type=gpu,
            region=region,
            method="lora",
            status=Job.Status.TRAINING,
        )
        for i in range(n)
    )
    started = timezone.now() - timedelta(seconds=150)  # three minutes started each
    BillingSession.objects.bulk_create(
        BillingSession(
            organization_id=j.organization_id,
            job=j,
            run=1,
            gpu_type=gpu,
            gpu_count=1 + j.pk % 4,
            started_at=started,
        )
        for j in jobs
    )


def one_tick(n: int) -> tuple[float, int]:
    BillingSession.objects.filter(ended_at__isnull=True).update(ended_at=timezone.now())
    populate(n, f"bench{n}")
    with CaptureQueriesContext(connection) as queries:
        start = time.perf_counter()
        result = meter_tick()
        seconds = time.perf_counter() - start
    assert result.charged_minutes == 3 * n, result.charged_minutes
    return seconds, len(queries)


def main() -> None:
    old_name = connection.settings_dict["NAME"]
    connection.creation.create_test_db(verbosity=0, autoclobber=True, keepdb=False)
    try:
        catalog_seed()
        rows = []
        for n in (1_000, 10_000):
            seconds, queries = one_tick(n)
            rows.append((n, seconds, queries))
            print(f"{n:>6} sessions: {seconds:.3f} s, {queries} queries")
        sample = Organization.objects.filter(slug__startswith="bench10000-").first()
        # Synthetic orgs start with a balance and no entry; every tick entry moved it.
        assert sample.balance_micros == START + ledger_sum_micros(organization_id=sample.pk)
        assert LedgerEntry.objects.filter(kind="meter").count() == 3 * 11_000
        n, seconds, queries = rows[-1]
        print(f"meter: {seconds:.2f} s for {n} sessions, {queries} queries")
    finally:
        connection.creation.destroy_test_db(old_name, verbosity=0)


if __name__ == "__main__":
    main()
