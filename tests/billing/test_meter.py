import os
import signal
import threading
import time
from datetime import timedelta

import psycopg
import pytest
from django.db import connection
from django.utils import timezone

from ecolink.accounts.models import Organization
from ecolink.billing.meter import meter_tick, session_settle
from ecolink.billing.models import BillingSession, LedgerEntry
from ecolink.billing.rates import minute_charge_micros
from ecolink.billing.selectors import ledger_sum_micros
from ecolink.catalog.models import GpuType
from tests.conftest import database_url_for_subprocesses, start_celery_worker, subprocess_env
from tests.factories import fund
from tests.finetune.factories import JobFactory

MINUTE = 60


@pytest.fixture
def session(catalog, settings):
    settings.BILLING_MINUTE_SECONDS = MINUTE
    job = JobFactory(gpu_count=2)
    fund(job.organization, 10_000_000)
    return BillingSession.objects.create(
        organization=job.organization,
        job=job,
        run=1,
        gpu_type=job.gpu_type,
        gpu_count=2,
        started_at=timezone.now() - timedelta(seconds=3.5 * MINUTE),
    )


def charge(session) -> int:
    gpu = GpuType.objects.get(pk=session.gpu_type_id)
    return minute_charge_micros(hourly_rate_micros=gpu.hourly_rate_micros, gpu_count=2)


def balance_is_the_sum(org) -> bool:
    org.refresh_from_db()
    return org.balance_micros == ledger_sum_micros(organization_id=org.pk)


@pytest.mark.django_db
def test_each_started_minute_is_charged_once_at_the_rate_times_the_count(session):
    result = meter_tick()
    assert result.charged_minutes == 4  # minutes 0, 1, 2 and the 4th, started at 3.0
    assert meter_tick().charged_minutes == 0
    entries = LedgerEntry.objects.filter(kind=LedgerEntry.Kind.METER)
    assert sorted(entries.values_list("key", flat=True)) == [
        f"meter:{session.pk}:{k}" for k in range(4)
    ]
    assert {e.amount_micros for e in entries} == {-charge(session)}
    assert balance_is_the_sum(session.organization)


@pytest.mark.django_db
def test_a_rate_change_applies_only_to_minutes_charged_after_it(session):
    meter_tick()
    before = list(LedgerEntry.objects.filter(kind="meter").values_list("pk", "amount_micros"))
    GpuType.objects.filter(pk=session.gpu_type_id).update(hourly_rate_micros=6_000_000)
    BillingSession.objects.filter(pk=session.pk).update(
        started_at=session.started_at - timedelta(seconds=MINUTE)
    )
    meter_tick()
    after = dict(LedgerEntry.objects.filter(kind="meter").values_list("pk", "amount_micros"))
    assert all(after[pk] == amount for pk, amount in before)
    assert LedgerEntry.objects.get(key=f"meter:{session.pk}:4").amount_micros == -200_000


@pytest.mark.django_db
def test_settlement_rounds_the_partial_minute_up_and_runs_once(session):
    meter_tick()  # four minutes
    ended = session.started_at + timedelta(seconds=4.2 * MINUTE)
    assert session_settle(session_id=session.pk, ended_at=ended)
    assert not session_settle(session_id=session.pk, ended_at=ended)
    settle = LedgerEntry.objects.get(key=f"settle:{session.pk}")
    assert settle.amount_micros == -charge(session)  # the fifth minute, rounded up
    session.refresh_from_db()
    assert session.charged_minutes == 5
    assert meter_tick().charged_minutes == 0  # an ended session is never charged again
    assert balance_is_the_sum(session.organization)


@pytest.mark.django_db
def test_an_org_that_cannot_pay_goes_at_most_one_minute_below_zero_and_is_paused(session):
    org = Organization.objects.get(pk=session.organization_id)
    fund(org, -(org.balance_micros - int(2.5 * charge(session))), key="drain")
    result = meter_tick()
    org.refresh_from_db()
    assert result.charged_minutes == 3  # the third minute takes it below zero; no fourth
    assert -charge(session) <= org.balance_micros < 0
    assert result.jobs_to_pause == [session.job_id]
    assert balance_is_the_sum(org)


@pytest.mark.django_db(transaction=True)
def test_concurrent_ticks_charge_each_minute_once(session):
    errors = []

    def tick():
        try:
            meter_tick()
        except Exception as exc:
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=tick) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert LedgerEntry.objects.filter(kind="meter").count() == 4
    assert balance_is_the_sum(Organization.objects.get(pk=session.organization_id))


@pytest.mark.django_db(transaction=True)
def test_a_worker_killed_during_a_tick_loses_and_doubles_no_minute(session, redis_client, tmp_path):
    """The tick blocks on a row lock held here and the worker is SIGKILLed inside it: its
    transaction dies with it. A fresh worker then runs the next tick (as beat would send
    it, and as the late-acknowledged task may be redelivered too): every minute is charged
    exactly once."""
    env = subprocess_env(
        CELERY_TASK_DEFAULT_QUEUE="meter-kill",
        ECOLINK_VAR_DIR=str(tmp_path),
        ECOLINK_REDIS_VISIBILITY_TIMEOUT="3",
        ECOLINK_BILLING_MINUTE_SECONDS=str(MINUTE),
    )

    def start_worker(log):
        return start_celery_worker(
            env, log, "--pool=prefork", "--concurrency=1", "-Q", "meter-kill"
        )

    from ecolink.billing.tasks import meter_tick as meter_task

    blocker = psycopg.connect(database_url_for_subprocesses())
    # Statistics views are frozen inside a transaction: watch from a connection of its own.
    watcher = psycopg.connect(database_url_for_subprocesses(), autocommit=True)
    try:
        blocker.execute(
            "SELECT 1 FROM accounts_organization WHERE id = %s FOR UPDATE",
            [session.organization_id],
        )
        with open(tmp_path / "w1.log", "w") as log:
            worker = start_worker(log)
            meter_task.apply_async(queue="meter-kill")
            deadline = time.monotonic() + 60
            while not _waiting_on_lock(watcher):
                assert time.monotonic() < deadline, (tmp_path / "w1.log").read_text()
                time.sleep(0.2)
            os.killpg(worker.pid, signal.SIGKILL)
            worker.wait()
    finally:
        blocker.rollback()  # release the lock
        blocker.close()
        watcher.close()
    assert LedgerEntry.objects.filter(kind="meter").count() == 0  # the killed tick left nothing

    with open(tmp_path / "w2.log", "w") as log:
        worker = start_worker(log)
        try:
            meter_task.apply_async(queue="meter-kill")
            meter_task.apply_async(queue="meter-kill")
            deadline = time.monotonic() + 60
            while LedgerEntry.objects.filter(kind="meter").count() < 4:
                assert time.monotonic() < deadline, (tmp_path / "w2.log").read_text()
                time.sleep(0.3)
            time.sleep(1)
        finally:
            os.killpg(worker.pid, signal.SIGTERM)
            worker.wait(timeout=30)
    keys = list(LedgerEntry.objects.filter(kind="meter").values_list("key", flat=True))
    assert sorted(keys) == [f"meter:{session.pk}:{k}" for k in range(4)]
    assert balance_is_the_sum(Organization.objects.get(pk=session.organization_id))


def _waiting_on_lock(conn) -> bool:
    row = conn.execute(
        "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND query LIKE %s",
        ["%accounts_organization%"],
    ).fetchone()
    return row[0] > 0


@pytest.mark.django_db
def test_meter_and_settlement_entries_belong_to_their_job(session):
    meter_tick()
    session_settle(
        session_id=session.pk, ended_at=session.started_at + timedelta(seconds=4.5 * MINUTE)
    )
    entries = LedgerEntry.objects.filter(kind__in=[LedgerEntry.Kind.METER, LedgerEntry.Kind.SETTLE])
    assert {e.kind for e in entries} == {LedgerEntry.Kind.METER, LedgerEntry.Kind.SETTLE}
    assert set(entries.values_list("job_id", flat=True)) == {session.job_id}
