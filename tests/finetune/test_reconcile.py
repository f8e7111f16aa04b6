"""The reconciler's decisions for every way a pod can end, against a recording fake
backend standing in for a cluster."""

from datetime import timedelta

import pytest
from django.utils import timezone

from ecolink.billing.models import BillingSession
from ecolink.finetune import reconcile
from ecolink.finetune.models import Job, JobEvent
from ecolink.finetune.retention import artifacts_retention_sweep
from ecolink.finetune.runconfig import job_artifacts_dir
from ecolink.registry.models import RegisteredAdapter
from tests.factories import fund
from tests.finetune.factories import JobFactory
from worker.pods.base import PodStatus

pytestmark = pytest.mark.django_db
S = Job.Status


class FakeBackend:
    def __init__(self, statuses: dict[str, PodStatus]):
        self.statuses, self.deleted = statuses, []

    def status(self, name):
        return self.statuses[name]

    def logs(self, name, tail=50):
        return [f"{name}: last line"]

    def delete(self, name):
        self.deleted.append(name)


@pytest.fixture
def backend(monkeypatch):
    fake = FakeBackend({})
    monkeypatch.setattr(reconcile, "pod_backend", lambda: fake)
    monkeypatch.setattr(reconcile, "job_launch", lambda job_id: False)
    return fake


def running_job(backend, pod: PodStatus, **fields) -> Job:
    fields.setdefault("status", S.TRAINING)
    job = JobFactory(
        pod_name=f"pod-{JobFactory._meta.model.objects.count()}", run_number=1, **fields
    )
    fund(job.organization, 1_000_000)
    BillingSession.objects.create(
        organization=job.organization,
        job=job,
        run=1,
        gpu_type=job.gpu_type,
        gpu_count=1,
        started_at=timezone.now() - timedelta(seconds=90),
    )
    backend.statuses[job.pod_name] = pod
    return job


def test_an_eviction_with_a_checkpoint_is_queued_again_for_free(catalog, backend):
    job = running_job(
        backend,
        PodStatus("failed", 75, "evicted"),
        checkpoint_path="/ckpt/checkpoint-5",
        checkpoint_step=5,
    )
    reconcile.jobs_reconcile()
    job.refresh_from_db()
    assert job.status == S.QUEUED and job.automatic_retries == 1
    assert not BillingSession.objects.filter(job=job, ended_at__isnull=True).exists()
    assert backend.deleted == [job.pod_name]


def test_an_eviction_without_a_checkpoint_fails_as_evicted(catalog, backend):
    job = running_job(backend, PodStatus("failed", 143, "evicted"))
    reconcile.jobs_reconcile()
    job.refresh_from_db()
    assert (job.status, job.error_class) == (S.FAILED, "evicted")
    assert "last line" in job.log_tail


@pytest.mark.parametrize(
    ("status", "trainer_class", "expected"),
    [
        (PodStatus("failed", 137, "oom"), "", "oom"),
        (PodStatus("failed", 137), "", "oom"),
        (PodStatus("failed", 65), "", "data"),
        (PodStatus("failed", 78), "", "config"),
        (PodStatus("failed", 1), "data", "data"),
        (PodStatus("failed", 1), "", "internal"),
        (PodStatus("missing", None, "node_lost"), "", "node_lost"),
        (PodStatus("failed", 1, "deadline"), "", "deadline"),
    ],
)
def test_failures_get_an_error_class_and_never_an_adapter(
    catalog, backend, status, trainer_class, expected
):
    job = running_job(backend, status, error_class=trainer_class)
    reconcile.jobs_reconcile()
    job.refresh_from_db()
    assert (job.status, job.error_class) == (S.FAILED, expected)
    assert not RegisteredAdapter.objects.filter(job=job).exists()


def test_a_clean_exit_without_the_finished_event_fails(catalog, backend):
    job = running_job(backend, PodStatus("succeeded", 0))
    reconcile.jobs_reconcile()
    job.refresh_from_db()
    assert job.status == S.FAILED and "without finishing" in job.status_reason


def test_a_pod_that_ignores_its_stop_past_the_grace_period_is_killed(catalog, backend, settings):
    settings.POD_STOP_GRACE_SECONDS = 10
    job = running_job(
        backend,
        PodStatus("running"),
        status=S.PAUSING,
        stop_requested_at=timezone.now() - timedelta(seconds=60),
    )
    fresh = running_job(
        backend, PodStatus("running"), status=S.PAUSING, stop_requested_at=timezone.now()
    )
    reconcile.jobs_reconcile()
    assert backend.deleted == [job.pod_name]
    assert fresh.pod_name not in backend.deleted


def test_every_transition_is_recorded_as_an_event(catalog, backend):
    job = running_job(backend, PodStatus("failed", 65))
    reconcile.jobs_reconcile()
    assert JobEvent.objects.filter(job=job, kind="status", data__status="failed").count() == 1


def test_retention_deletes_expired_artifacts_of_cancelled_jobs_only(catalog, settings, tmp_path):
    settings.ARTIFACTS_DIR = tmp_path
    expired = JobFactory(
        status=S.CANCELLED, checkpoint_path="x", retention_until=timezone.now() - timedelta(days=1)
    )
    kept = JobFactory(
        status=S.CANCELLED, checkpoint_path="x", retention_until=timezone.now() + timedelta(days=29)
    )
    registered = JobFactory(status=S.REGISTERED, adapter_path="x")
    for job in (expired, kept, registered):
        job_artifacts_dir(job.pk).mkdir(parents=True)
    assert artifacts_retention_sweep() == 1
    assert not job_artifacts_dir(expired.pk).exists()
    assert job_artifacts_dir(kept.pk).exists() and job_artifacts_dir(registered.pk).exists()
    assert artifacts_retention_sweep() == 0


def test_a_clean_exit_after_finishing_registers_the_adapter_in_the_same_pass(
    catalog, backend, tmp_path
):
    manifest = tmp_path / "manifest.json"
    manifest.write_text(
        '{"dataset_hash": "abc", "metrics": {"eval_loss": 1.5}, '
        '"hyperparameters": {"micro_batch_size": 4}}'
    )
    job = running_job(
        backend,
        PodStatus("succeeded", 0),
        status=S.TRAINED_PENDING_REGISTER,
        manifest_path=str(manifest),
        adapter_path=str(tmp_path / "adapter"),
    )
    reconcile.jobs_reconcile()
    job.refresh_from_db()
    assert job.status == S.REGISTERED
    adapter = RegisteredAdapter.objects.get(job=job)
    assert (adapter.dataset_hash, adapter.metrics) == ("abc", {"eval_loss": 1.5})
    assert backend.deleted == [job.pod_name]
