"""The /ops/ dashboard's numbers, from jobs and ledger entries made through the services."""

from datetime import timedelta

import pytest
from django.utils import timezone

from ecolink.billing.models import LedgerEntry
from ecolink.billing.services import ledger_post
from ecolink.finetune.models import Job
from tests.finetune.factories import BillingSessionFactory, JobFactory

pytestmark = pytest.mark.django_db
S = Job.Status


def billed(org, job, micros):
    BillingSessionFactory(
        job=job,
        run=1,
        started_at=timezone.now() - timedelta(minutes=30),
        ended_at=timezone.now(),
        charged_micros=micros,
    )


@pytest.fixture
def busy(org):
    now = timezone.now()
    JobFactory(organization=org, status=S.TRAINING)
    queued = JobFactory(organization=org, status=S.QUEUED)
    Job.objects.filter(pk=queued.pk).update(updated_at=now - timedelta(minutes=12))
    JobFactory(organization=org, status=S.QUEUED)
    for cls in ("oom", "oom", "data"):
        JobFactory(organization=org, status=S.FAILED, error_class=cls, finished_at=now)
    JobFactory(
        organization=org, status=S.FAILED, error_class="old", finished_at=now - timedelta(days=9)
    )
    inside = JobFactory(
        organization=org,
        status=S.REGISTERED,
        finished_at=now,
        estimate_low_micros=100_000,
        estimate_high_micros=200_000,
    )
    billed(org, inside, 125_000)
    above = JobFactory(
        organization=org,
        status=S.REGISTERED,
        finished_at=now,
        estimate_low_micros=100_000,
        estimate_high_micros=200_000,
    )
    billed(org, above, 300_000)
    for i, amount in enumerate((-10_000, -20_000)):
        ledger_post(
            organization_id=org.pk,
            amount_micros=amount,
            key=f"meter:test:{i}",
            kind=LedgerEntry.Kind.METER,
        )
    return org


def test_the_dashboard_shows_capacity_queue_statuses_money_failures_and_accuracy(
    busy, operator_client
):
    response = operator_client.get("/ops/")
    assert response.status_code == 200
    ctx = response.context
    local = next(p for p in ctx["pools"] if p.region == "Local machine")
    assert (local.in_use, local.free, local.total) == (1, 1, 2)
    assert ctx["queue"].count == 2 and 11 * 60 <= ctx["queue"].oldest_wait_seconds < 13 * 60
    assert dict(ctx["statuses"]) == {
        "Queued": 2,
        "Training": 1,
        "Registered": 2,
        "Failed": 4,
    }
    assert ctx["revenue_total"] == 30_000
    assert ctx["failures"] == [("oom", 2), ("data", 1)]
    accuracy = ctx["accuracy"]
    assert (accuracy.jobs, accuracy.inside, accuracy.above) == (2, 1, 1)
    assert accuracy.mean_position == pytest.approx(0.25)
    page = response.content.decode()
    for chart in ("capacity", "status", "revenue", "failures", "accuracy"):
        assert f'data-testid="chart-{chart}"' in page
    assert "<rect" in page and "50%" in page


def test_the_dashboard_costs_the_same_queries_however_many_jobs(busy, operator_client):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as few:
        operator_client.get("/ops/")
    for _ in range(10):
        job = JobFactory(organization=busy, status=S.REGISTERED, finished_at=timezone.now())
        billed(busy, job, 50_000)
        JobFactory(
            organization=busy, status=S.FAILED, error_class="oom", finished_at=timezone.now()
        )
    with CaptureQueriesContext(connection) as many:
        operator_client.get("/ops/")
    assert len(many) == len(few)


def test_an_empty_platform_renders(operator_client, catalog):
    response = operator_client.get("/ops/")
    assert response.status_code == 200 and b"No data yet" in response.content
