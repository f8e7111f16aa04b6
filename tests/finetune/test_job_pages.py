import pytest
from django.urls import reverse

from ecolink.finetune.models import Job
from tests.finetune.factories import BillingSessionFactory, JobFactory

pytestmark = pytest.mark.django_db
S = Job.Status


def act(client, job, action, htmx=True):
    headers = {"HX-Request": "true"} if htmx else {}
    return client.post(reverse("finetune:action", args=[job.pk, action]), headers=headers)


def test_the_status_panel_polls_while_live_and_stops_when_final(logged_in, org):
    job = JobFactory(organization=org, status=S.TRAINING, total_steps=10, current_step=4)
    panel = logged_in.get(reverse("finetune:status", args=[job.pk]))
    body = panel.content.decode()
    assert 'hx-trigger="every 3s"' in body and "Step <strong>4</strong> / 10" in body
    Job.objects.filter(pk=job.pk).update(status=S.REGISTERED)
    body = logged_in.get(reverse("finetune:status", args=[job.pk])).content.decode()
    assert "hx-trigger" not in body


def test_polling_costs_the_same_queries_however_long_the_history(
    logged_in, org, django_assert_max_num_queries
):
    job = JobFactory(organization=org, status=S.TRAINING)
    for run in range(1, 30):
        BillingSessionFactory(
            job=job,
            run=run,
            charged_micros=10,
        )
    with django_assert_max_num_queries(8):
        logged_in.get(reverse("finetune:status", args=[job.pk]))


def test_cancel_is_idempotent_and_a_queued_job_is_cancelled_at_once(logged_in, org):
    job = JobFactory(organization=org, status=S.QUEUED)
    assert act(logged_in, job, "cancel").status_code == 200
    assert act(logged_in, job, "cancel").status_code == 200
    job.refresh_from_db()
    assert job.status == S.CANCELLED and job.retention_until is not None


def test_pause_moves_a_training_job_to_pausing_and_ends_its_meter(
    logged_in, org, django_capture_on_commit_callbacks
):
    job = JobFactory(organization=org, status=S.TRAINING, run_number=1, pod_name="pod")
    session = BillingSessionFactory(
        job=job,
        run=1,
    )
    with django_capture_on_commit_callbacks() as callbacks:
        act(logged_in, job, "pause")
    job.refresh_from_db()
    session.refresh_from_db()
    assert job.status == S.PAUSING and job.pause_reason == "user"
    assert session.ended_at is not None
    assert len(callbacks) == 1  # the stop request, sent after commit
    act(logged_in, job, "pause")
    assert Job.objects.get(pk=job.pk).status == S.PAUSING


def test_resume_is_refused_until_the_balance_covers_the_remaining_estimate(logged_in, org):
    job = JobFactory(
        organization=org,
        status=S.PAUSED,
        estimate_high_micros=10**12,
        total_steps=10,
        checkpoint_step=5,
        pause_reason="balance",
    )
    body = logged_in.get(reverse("finetune:detail", args=[job.pk])).content.decode()
    assert "Balance reached zero" in body and 'data-testid="resume"' in body
    assert "disabled" in body[body.index('data-testid="resume"') :][:120]
    act(logged_in, job, "resume", htmx=False)
    assert Job.objects.get(pk=job.pk).status == S.PAUSED


def test_another_orgs_job_cannot_be_acted_on(logged_in):
    other = JobFactory(status=S.QUEUED)
    assert act(logged_in, other, "cancel").status_code == 404
    assert Job.objects.get(pk=other.pk).status == S.QUEUED


def test_actions_need_post(logged_in, org):
    job = JobFactory(organization=org, status=S.QUEUED)
    assert logged_in.get(reverse("finetune:action", args=[job.pk, "cancel"])).status_code == 405
