"""Job actions answer done, already there, or refused with a reason, and every surface (the
job page, /v1, /api/v1 and the operator console) answers a repeated click alike."""

import threading

import pytest
from django.db import connection
from django.test import Client
from django.urls import reverse

from ecolink.api.keys import api_key_create
from ecolink.finetune import actions
from ecolink.finetune.models import Job, JobEvent
from ecolink.finetune.outcomes import ActionRefused, BalanceTooLow, Outcome
from tests.factories import PASSWORD, UserFactory, fund
from tests.finetune.factories import BillingSessionFactory, JobFactory
from tests.ops.conftest import operators_group

S = Job.Status


def running(org, status=S.TRAINING, **fields) -> Job:
    job = JobFactory(organization=org, status=status, run_number=1, pod_name="pod-1", **fields)
    BillingSessionFactory(job=job, run=1)
    return job


def status_events(job: Job) -> int:
    return JobEvent.objects.filter(job=job, kind="status").count()


# --- Each action's outcomes --------------------------------------------------------


@pytest.mark.django_db
class TestOutcomes:
    def test_pause_is_done_then_already_and_refused_where_nothing_runs(
        self, org, django_capture_on_commit_callbacks
    ):
        job = running(org)
        with django_capture_on_commit_callbacks() as stops:
            assert actions.job_pause(job_id=job.pk, reason="user").outcome is Outcome.DONE
        assert [c.args for c in stops] == [("finetune.stop_pod",)]
        result = actions.job_pause(job_id=job.pk, reason="user")
        assert result.outcome is Outcome.ALREADY and result.job.status == S.PAUSING
        Job.objects.filter(pk=job.pk).update(status=S.PAUSED)
        assert actions.job_pause(job_id=job.pk, reason="user").outcome is Outcome.ALREADY
        for status in (S.QUEUED, S.REGISTERED, S.FAILED, S.CANCELLED):
            other = JobFactory(organization=org, status=status)
            with pytest.raises(ActionRefused):
                actions.job_pause(job_id=other.pk, reason="user")
            assert Job.objects.get(pk=other.pk).status == status

    def test_resume_is_done_then_already_and_refused_below_the_gate(self, org):
        job = JobFactory(organization=org, status=S.PAUSED, estimate_high_micros=1_000_000)
        result = actions.job_resume(job_id=job.pk)
        assert result.outcome is Outcome.DONE and result.job.status == S.QUEUED
        assert actions.job_resume(job_id=job.pk).outcome is Outcome.ALREADY
        poor = JobFactory(organization=org, status=S.PAUSED, estimate_high_micros=10**12)
        with pytest.raises(BalanceTooLow, match="top up first") as refused:
            actions.job_resume(job_id=poor.pk)
        assert refused.value.code == "insufficient_balance"
        ended = JobFactory(organization=org, status=S.REGISTERED)
        with pytest.raises(ActionRefused, match="can't be resumed"):
            actions.job_resume(job_id=ended.pk)

    def test_cancel_is_done_at_once_without_a_pod_and_through_cancelling_with_one(self, org):
        queued = JobFactory(organization=org, status=S.QUEUED)
        assert actions.job_cancel(job_id=queued.pk).job.status == S.CANCELLED
        assert actions.job_cancel(job_id=queued.pk).outcome is Outcome.ALREADY
        job = running(org)
        result = actions.job_cancel(job_id=job.pk)
        assert result.outcome is Outcome.DONE and result.job.status == S.CANCELLING
        assert actions.job_cancel(job_id=job.pk).outcome is Outcome.ALREADY
        for status in (S.REGISTERED, S.FAILED, S.TRAINED_PENDING_REGISTER):
            other = JobFactory(organization=org, status=status)
            with pytest.raises(ActionRefused, match="can't be cancelled"):
                actions.job_cancel(job_id=other.pk)

    def test_fail_wins_once_and_never_leaves_an_ended_job(self, org):
        job = running(org)
        assert actions.job_fail(job_id=job.pk, error_class="internal", message="x")
        assert not actions.job_fail(job_id=job.pk, error_class="data", message="y")
        job.refresh_from_db()
        assert job.status == S.FAILED and job.error_class == "internal"
        done = JobFactory(organization=org, status=S.REGISTERED)
        assert not actions.job_fail(job_id=done.pk, error_class="internal", message="x")

    def test_mark_failed_is_done_then_already_and_refused_once_ended(self, org):
        job = running(org)
        assert actions.job_mark_failed(job_id=job.pk, message="stuck").outcome is Outcome.DONE
        assert actions.job_mark_failed(job_id=job.pk, message="stuck").outcome is Outcome.ALREADY
        ended = JobFactory(organization=org, status=S.CANCELLED)
        with pytest.raises(ActionRefused):
            actions.job_mark_failed(job_id=ended.pk, message="stuck")

    def test_phases_finish_and_register_move_only_from_their_states(self, org):
        job = running(org, status=S.STARTING)
        assert actions.job_phase(job_id=job.pk, phase="training")
        assert not actions.job_phase(job_id=job.pk, phase="loading_model")
        assert actions.job_phase(job_id=job.pk, phase="evaluating")
        assert actions.job_training_finish(
            job_id=job.pk, adapter_path="", manifest_path="", metrics={"loss": 1.0}
        )
        assert actions.job_register(job_id=job.pk) is not None
        assert actions.job_register(job_id=job.pk) is None  # already registered
        assert not actions.job_phase(job_id=job.pk, phase="training")
        assert Job.objects.get(pk=job.pk).status == S.REGISTERED

    def test_pod_endings_complete_only_a_pause_or_cancel_in_progress(self, org):
        job = running(org, status=S.PAUSING)
        assert not actions.job_cancel_complete(job_id=job.pk, log_tail="")
        assert actions.job_pause_complete(job_id=job.pk, log_tail="bye")
        assert Job.objects.get(pk=job.pk).status == S.PAUSED
        job = running(org, status=S.CANCELLING)
        assert not actions.job_pause_complete(job_id=job.pk, log_tail="")
        assert actions.job_cancel_complete(job_id=job.pk, log_tail="")
        assert Job.objects.get(pk=job.pk).status == S.CANCELLED

    def test_retry_requeues_a_lost_run_and_counts_it(self, org):
        job = running(org, checkpoint_path="/c/ckpt-5", checkpoint_step=5)
        assert actions.job_retry(job_id=job.pk, message="Evicted; retrying")
        job.refresh_from_db()
        assert job.status == S.QUEUED and job.automatic_retries == 1


# --- Every surface answers a duplicate alike -----------------------------------------


@pytest.fixture
def surfaces(org, user):
    """A way to press pause, resume or cancel on each surface, returning whether it was
    answered as a success and the status the answer showed."""
    _, key = api_key_create(organization=org, name="test")
    page = Client()
    page.login(username=user.username, password=PASSWORD)
    api = Client(HTTP_AUTHORIZATION=f"Bearer {key}")
    operator = UserFactory(username="ops-bob", is_staff=True)
    operator.groups.add(operators_group())
    console = Client()
    console.login(username=operator.username, password=PASSWORD)
    native_verbs = {"cancel": "stop", "pause": "pause", "resume": "resume"}

    def on_page(job, verb):
        response = page.post(
            reverse("finetune:action", args=[job.pk, verb]), headers={"HX-Request": "true"}
        )
        ok = response.status_code == 200 and not response.context["refusal"]
        return ok, response.context["job"].status

    def on_v1(job, verb):
        response = api.post(f"/v1/fine_tuning/jobs/ftjob-{job.pk}/{verb}")
        return response.status_code == 200, response.json().get("native_status")

    def on_native(job, verb):
        response = api.post(f"/api/v1/fine-tuning/jobs/ftjob-{job.pk}/{native_verbs[verb]}")
        return response.status_code == 200, response.json().get("native_status")

    def on_console(job, verb):
        response = console.post(
            f"/admin/finetune/job/{job.pk}/operate/{verb}/", {"reason": "Support ticket"}
        )
        return response.status_code == 302, Job.objects.get(pk=job.pk).status

    return {"page": on_page, "v1": on_v1, "native": on_native, "console": on_console}


DUPLICATES = [
    # verb, the job's state before, the state after the first press (and the second)
    ("pause", S.TRAINING, S.PAUSING),
    ("resume", S.PAUSED, S.QUEUED),
    ("cancel", S.TRAINING, S.CANCELLING),
]


@pytest.mark.django_db
@pytest.mark.parametrize("surface", ["page", "v1", "native", "console"])
@pytest.mark.parametrize("verb,before,after", DUPLICATES)
def test_a_duplicate_press_is_the_same_success_on_every_surface(
    org, surfaces, surface, verb, before, after, django_capture_on_commit_callbacks
):
    job = running(org, status=before, estimate_high_micros=1_000_000)
    press = surfaces[surface]
    with django_capture_on_commit_callbacks():
        first = press(job, verb)
        events = status_events(job)
        second = press(job, verb)
    assert first == (True, after)
    assert second == (True, after)
    assert status_events(job) == events  # the second press changed nothing


@pytest.mark.django_db
@pytest.mark.parametrize("surface", ["page", "v1", "native", "console"])
def test_a_refusal_is_a_refusal_on_every_surface(org, surfaces, surface):
    job = JobFactory(organization=org, status=S.REGISTERED)
    ok, _ = surfaces[surface](job, "cancel")
    assert not ok and Job.objects.get(pk=job.pk).status == S.REGISTERED


@pytest.mark.django_db(transaction=True)
def test_twenty_concurrent_cancels_of_one_job_all_succeed_and_cancel_it_once(catalog, redis_client):
    from tests.factories import OrganizationFactory

    org = OrganizationFactory()
    fund(org, 10_000_000)
    _, key = api_key_create(organization=org, name="test")
    job = running(org)
    barrier = threading.Barrier(20)
    answers: list[tuple[int, str]] = []
    lock = threading.Lock()

    def cancel():
        try:
            api = Client(HTTP_AUTHORIZATION=f"Bearer {key}")
            barrier.wait()
            response = api.post(f"/v1/fine_tuning/jobs/ftjob-{job.pk}/cancel")
            with lock:
                answers.append((response.status_code, response.json()["native_status"]))
        finally:
            connection.close()

    threads = [threading.Thread(target=cancel) for _ in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert answers == [(200, S.CANCELLING)] * 20
    assert Job.objects.get(pk=job.pk).status == S.CANCELLING
    assert JobEvent.objects.filter(job=job, kind="status", data__status=S.CANCELLING).count() == 1
