"""Every operator action on a job: it changes the job, writes its audit row in the same
transaction, and is refused without a reason (and then changes nothing)."""

from datetime import timedelta

import pytest
from django.utils import timezone

from ecolink.billing.models import BillingSession, LedgerEntry
from ecolink.finetune.models import Job
from ecolink.finetune.outcomes import ActionRefused
from ecolink.ops import services
from ecolink.ops.models import AuditLog
from tests.finetune.factories import BillingSessionFactory, JobFactory

pytestmark = pytest.mark.django_db
S = Job.Status


def running(org, status=S.TRAINING, **fields) -> Job:
    """A job with a pod run under way and billed since 90 s ago."""
    job = JobFactory(organization=org, status=status, pod_name="ecolink-job-x-1", run_number=1)
    BillingSessionFactory(
        job=job,
        run=1,
        started_at=timezone.now() - timedelta(seconds=90),
    )
    Job.objects.filter(pk=job.pk).update(**fields)
    return Job.objects.get(pk=job.pk)


def audit_for(job):
    return AuditLog.objects.filter(target_type="finetune.job", target_id=str(job.pk))


def test_cancel_stops_the_job_settles_its_meter_and_is_audited(
    org, operator, django_capture_on_commit_callbacks
):
    job = running(org)
    with django_capture_on_commit_callbacks() as stops:
        services.operator_job_cancel(operator=operator, job_id=job.pk, reason="Customer asked")
    job.refresh_from_db()
    assert job.status == S.CANCELLING and "Customer asked" in job.status_reason
    assert len(stops) == 1  # the pod is told to stop once the transaction commits
    assert LedgerEntry.objects.filter(kind="settle", organization=org).count() == 1
    row = audit_for(job).get()
    assert row.action == "job_cancel" and row.operator == operator
    assert row.operator_name == "ops-alice" and row.reason == "Customer asked"
    assert row.before["status"] == S.TRAINING and row.after["status"] == S.CANCELLING
    assert row.organization == org


def test_cancel_of_a_queued_job_is_immediate(org, operator):
    job = JobFactory(organization=org, status=S.QUEUED)
    services.operator_job_cancel(operator=operator, job_id=job.pk, reason="Abuse report")
    job.refresh_from_db()
    assert job.status == S.CANCELLED and job.retention_until is not None
    assert audit_for(job).get().after["status"] == S.CANCELLED


def test_pause_moves_to_pausing_and_is_audited(org, operator, django_capture_on_commit_callbacks):
    job = running(org)
    with django_capture_on_commit_callbacks():
        services.operator_job_pause(operator=operator, job_id=job.pk, reason="Node maintenance")
    job.refresh_from_db()
    assert job.status == S.PAUSING and job.pause_reason == "operator"
    assert not BillingSession.objects.filter(job=job, ended_at__isnull=True).exists()
    assert audit_for(job).get().action == "job_pause"


def test_resume_queues_a_paused_job_and_is_audited(
    org, operator, django_capture_on_commit_callbacks
):
    job = JobFactory(organization=org, status=S.PAUSED, pause_reason="operator")
    with django_capture_on_commit_callbacks() as launches:
        services.operator_job_resume(operator=operator, job_id=job.pk, reason="Maintenance done")
    job.refresh_from_db()
    assert job.status == S.QUEUED and len(launches) == 1
    row = audit_for(job).get()
    assert (row.action, row.before["status"], row.after["status"]) == (
        "job_resume",
        S.PAUSED,
        S.QUEUED,
    )


def test_mark_failed_fails_a_stuck_job_stops_its_pod_and_is_audited(
    org, operator, django_capture_on_commit_callbacks
):
    job = running(org, status=S.STARTING)
    with django_capture_on_commit_callbacks() as stops:
        services.operator_job_mark_failed(operator=operator, job_id=job.pk, reason="Stuck 3 h")
    job.refresh_from_db()
    assert job.status == S.FAILED and job.error_class == "operator"
    assert "Stuck 3 h" in job.status_reason
    assert len(stops) == 1
    assert not BillingSession.objects.filter(job=job, ended_at__isnull=True).exists()
    assert audit_for(job).get().action == "job_mark_failed"


def test_extend_retention_pushes_the_date_out_and_is_audited(org, operator):
    until = timezone.now() + timedelta(days=3)
    job = JobFactory(
        organization=org, status=S.CANCELLED, retention_until=until, checkpoint_path="/c/ckpt-5"
    )
    services.operator_job_extend_retention(
        operator=operator, job_id=job.pk, days=30, reason="Legal hold"
    )
    job.refresh_from_db()
    assert job.retention_until == until + timedelta(days=30)
    row = audit_for(job).get()
    assert row.action == "job_extend_retention"
    assert row.before["retention_until"] != row.after["retention_until"]


ACTIONS = [
    (services.operator_job_cancel, S.TRAINING, {}),
    (services.operator_job_pause, S.TRAINING, {}),
    (services.operator_job_resume, S.PAUSED, {}),
    (services.operator_job_mark_failed, S.TRAINING, {}),
    (services.operator_job_extend_retention, S.FAILED, {"days": 10}),
]


@pytest.mark.parametrize("action,status,extra", ACTIONS)
@pytest.mark.parametrize("reason", ["", "   "])
def test_every_action_is_refused_without_a_reason(org, operator, action, status, extra, reason):
    job = running(org, status=status, checkpoint_path="/c/ckpt-5")
    before = Job.objects.values().get(pk=job.pk)
    with pytest.raises(services.ReasonRequired):
        action(operator=operator, job_id=job.pk, reason=reason, **extra)
    assert Job.objects.values().get(pk=job.pk) == before
    assert not AuditLog.objects.exists()


@pytest.mark.parametrize(
    "action,status",
    [
        (services.operator_job_cancel, S.REGISTERED),
        (services.operator_job_pause, S.REGISTERED),
        (services.operator_job_resume, S.FAILED),
        (services.operator_job_mark_failed, S.CANCELLED),
    ],
)
def test_an_action_the_job_is_not_in_a_state_for_is_refused_and_not_audited(
    org, operator, action, status
):
    job = JobFactory(organization=org, status=status)
    with pytest.raises(ActionRefused):
        action(operator=operator, job_id=job.pk, reason="Trying")
    assert Job.objects.get(pk=job.pk).status == status
    assert not AuditLog.objects.exists()


def test_resume_refused_for_want_of_balance_leaves_no_audit_row(org, operator):
    job = JobFactory(organization=org, status=S.PAUSED, estimate_high_micros=10**12)
    with pytest.raises(ActionRefused, match="balance"):
        services.operator_job_resume(operator=operator, job_id=job.pk, reason="Please")
    assert Job.objects.get(pk=job.pk).status == S.PAUSED
    assert not AuditLog.objects.exists()


def test_retention_of_a_live_job_cannot_be_extended(org, operator):
    job = running(org)
    with pytest.raises(ActionRefused):
        services.operator_job_extend_retention(
            operator=operator, job_id=job.pk, days=5, reason="Hold"
        )
    assert not AuditLog.objects.exists()


# --- The same actions through the admin, as an operator clicks them.


def test_the_admin_change_page_offers_the_actions_the_job_can_take(org, operator_client):
    job = running(org)
    page = operator_client.get(f"/admin/finetune/job/{job.pk}/change/").content.decode()
    assert f"/admin/finetune/job/{job.pk}/operate/cancel/" in page
    assert f"/admin/finetune/job/{job.pk}/operate/pause/" in page
    assert "operate/resume/" not in page
    assert "ecolink-job-x-1" in page  # pod, sessions and events inline


def test_cancelling_through_the_admin_needs_a_reason(
    org, operator, operator_client, django_capture_on_commit_callbacks
):
    job = running(org)
    url = f"/admin/finetune/job/{job.pk}/operate/cancel/"
    refused = operator_client.post(url, {"reason": ""})
    assert refused.status_code == 200 and b"This field is required" in refused.content
    assert Job.objects.get(pk=job.pk).status == S.TRAINING and not AuditLog.objects.exists()

    with django_capture_on_commit_callbacks():
        done = operator_client.post(url, {"reason": "Runaway job"})
    assert done.status_code == 302
    assert Job.objects.get(pk=job.pk).status == S.CANCELLING
    assert audit_for(job).get().reason == "Runaway job"


def test_extending_retention_through_the_admin(org, operator_client):
    job = JobFactory(
        organization=org,
        status=S.FAILED,
        retention_until=timezone.now() + timedelta(days=1),
        adapter_path="/a",
    )
    url = f"/admin/finetune/job/{job.pk}/operate/extend_retention/"
    assert operator_client.post(url, {"days": 7, "reason": ""}).status_code == 200
    assert not AuditLog.objects.exists()
    assert operator_client.post(url, {"days": 7, "reason": "Appeal"}).status_code == 302
    assert audit_for(job).get().action == "job_extend_retention"


def test_a_refused_action_shows_why_in_the_admin(org, operator_client):
    job = JobFactory(organization=org, status=S.REGISTERED)
    response = operator_client.post(f"/admin/finetune/job/{job.pk}/operate/pause/", {"reason": "x"})
    assert response.status_code == 200 and b"can&#x27;t be paused" in response.content
    assert not AuditLog.objects.exists()


def test_the_job_list_shows_live_cost_in_as_many_queries_for_many_jobs_as_for_one(
    org, operator_client
):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    url = "/admin/finetune/job/?status__exact=training"

    def queries() -> int:
        with CaptureQueriesContext(connection) as ctx:
            assert operator_client.get(url).status_code == 200
        return len(ctx)

    running(org)
    one = queries()
    for _ in range(5):
        running(org)
    JobFactory(organization=org, status=S.QUEUED)
    assert queries() == one
    response = operator_client.get(url)
    assert response.content.decode().count('class="field-live_cost"') == 6
    assert operator_client.get(f"/admin/finetune/job/?q={org.name}").status_code == 200
    assert operator_client.get("/admin/finetune/job/?q=42").status_code == 200


def test_a_finished_jobs_page_shows_its_run_log_from_the_artifacts(
    org, operator_client, settings, tmp_path
):
    settings.ARTIFACTS_DIR = tmp_path
    job = JobFactory(organization=org, status=S.REGISTERED, run_number=2)
    log = tmp_path / "jobs" / str(job.pk) / "logs" / "run-2.log"
    log.parent.mkdir(parents=True)
    log.write_text("".join(f"step {i} <loss>\n" for i in range(300)))
    page = operator_client.get(f"/admin/finetune/job/{job.pk}/change/").content.decode()
    assert "step 299 &lt;loss&gt;" in page and "step 199 " not in page
