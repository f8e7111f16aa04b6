"""The transition table and its one conditional update: what may follow what, and that of
two callers racing one transition on real PostgreSQL exactly one wins."""

import threading

import pytest
from django.db import connection

from ecolink.finetune.lifecycle import (
    ALLOWED,
    LIVE_STATUSES,
    TERMINAL_STATUSES,
    TransitionNotAllowed,
    transition,
)
from ecolink.finetune.models import Job, JobEvent
from tests.finetune.factories import JobFactory

S = Job.Status

# The lifecycle as DESIGN.md draws it: every arrow, and nothing else.
ARROWS = {
    (S.QUEUED, S.STARTING),
    (S.STARTING, S.TRAINING),
    (S.EVALUATING, S.TRAINING),
    (S.STARTING, S.EVALUATING),
    (S.TRAINING, S.EVALUATING),
    (S.STARTING, S.TRAINED_PENDING_REGISTER),
    (S.TRAINING, S.TRAINED_PENDING_REGISTER),
    (S.EVALUATING, S.TRAINED_PENDING_REGISTER),
    (S.TRAINED_PENDING_REGISTER, S.REGISTERED),
    (S.STARTING, S.PAUSING),
    (S.TRAINING, S.PAUSING),
    (S.EVALUATING, S.PAUSING),
    (S.PAUSING, S.PAUSED),
    (S.PAUSED, S.QUEUED),  # resume
    (S.STARTING, S.QUEUED),  # automatic retry after an eviction
    (S.TRAINING, S.QUEUED),
    (S.EVALUATING, S.QUEUED),
    (S.STARTING, S.CANCELLING),
    (S.TRAINING, S.CANCELLING),
    (S.EVALUATING, S.CANCELLING),
    (S.PAUSING, S.CANCELLING),
    (S.QUEUED, S.CANCELLED),
    (S.PAUSED, S.CANCELLED),
    (S.CANCELLING, S.CANCELLED),
    *((live, S.FAILED) for live in (*LIVE_STATUSES, S.PAUSED)),
}


def test_the_table_allows_exactly_the_lifecycles_arrows():
    table = {(old, new) for new, olds in ALLOWED.items() for old in olds}
    assert table == ARROWS


def test_no_transition_leaves_a_terminal_state():
    for olds in ALLOWED.values():
        assert not set(olds) & set(TERMINAL_STATUSES)


@pytest.mark.django_db
@pytest.mark.parametrize("old,new", sorted(ARROWS))
def test_every_allowed_arrow_moves_the_job_and_records_it(catalog, old, new):
    job = JobFactory(status=old)
    assert transition(job_id=job.pk, to=new, expected=[old]) is True
    job.refresh_from_db()
    assert job.status == new
    event = JobEvent.objects.get(job=job, kind="status")
    assert event.data["status"] == new


@pytest.mark.django_db
@pytest.mark.parametrize(
    "old,new",
    sorted(
        (old, new)
        for old in S.values
        for new in S.values
        if (old, new) not in ARROWS and old != new
    ),
)
def test_a_transition_the_table_does_not_allow_is_refused_and_changes_nothing(catalog, old, new):
    job = JobFactory(status=old)
    with pytest.raises(TransitionNotAllowed):
        transition(job_id=job.pk, to=new, expected=[old])
    # Without `expected`, the update only matches the allowed sources: no row moves.
    assert transition(job_id=job.pk, to=new) is False
    job.refresh_from_db()
    assert job.status == old
    assert not JobEvent.objects.filter(job=job).exists()


@pytest.mark.django_db
def test_a_caller_that_thinks_the_job_is_elsewhere_loses(catalog):
    job = JobFactory(status=S.TRAINING)
    assert transition(job_id=job.pk, to=S.PAUSING, expected=[S.STARTING]) is False
    assert Job.objects.get(pk=job.pk).status == S.TRAINING


def _race(job_id: int, to: str, callers: int) -> list[bool]:
    barrier = threading.Barrier(callers)
    results: list[bool] = []
    lock = threading.Lock()

    def call():
        try:
            barrier.wait()
            won = transition(job_id=job_id, to=to)
            with lock:
                results.append(won)
        finally:
            connection.close()  # each thread had a connection of its own

    threads = [threading.Thread(target=call) for _ in range(callers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    return results


@pytest.mark.django_db(transaction=True)
def test_two_threads_racing_one_transition_on_postgresql_exactly_one_wins(catalog):
    for _ in range(10):
        job = JobFactory(status=S.QUEUED)
        assert sorted(_race(job.pk, S.STARTING, 2)) == [False, True]
        assert Job.objects.get(pk=job.pk).status == S.STARTING
        assert JobEvent.objects.filter(job=job, kind="status").count() == 1
