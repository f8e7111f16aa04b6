"""Jobs running for real: a Celery worker with beat, the live server taking the pods'
events, the local pod backend, and the real trainer on the tiny model."""

import contextlib
import json
import os
import signal
import subprocess
import time
import uuid
from pathlib import Path

import pytest
from django.core.files.base import ContentFile

from ecolink.accounts.models import Organization
from ecolink.billing.models import BillingSession, LedgerEntry
from ecolink.billing.selectors import ledger_sum_micros
from ecolink.catalog.models import BaseModel, GpuType, Region
from ecolink.datasets.models import Dataset
from ecolink.datasets.services import dataset_upload
from ecolink.finetune.actions import job_approve, job_cancel, job_resume
from ecolink.finetune.models import Job, JobEvent, JobMetric, WizardDraft
from ecolink.finetune.outcomes import Outcome
from ecolink.registry.models import RegisteredAdapter
from tests.conftest import start_celery_worker, subprocess_env
from tests.factories import OrganizationFactory, fund, member_of
from worker.celery import app

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


def wait_for(predicate, timeout, what, log=None):
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            tail = log.read_text()[-4000:] if log and log.exists() else ""
            raise AssertionError(f"timed out waiting for {what}\n{tail}")
        time.sleep(0.3)


class Platform:
    def __init__(self, tmp_path, tiny_model_dir, live_server, settings):
        self.tmp_path, self.log = tmp_path, tmp_path / "worker.log"
        self.tiny_model_dir, self.live_server = tiny_model_dir, live_server
        self.settings = settings
        self.proc = None

    def start(self, *, minute_seconds: int, **extra_env: str) -> None:
        queue = f"run-{uuid.uuid4().hex[:8]}"
        artifacts, var = self.tmp_path / "artifacts", self.tmp_path / "var"
        s = self.settings
        s.BILLING_MINUTE_SECONDS = minute_seconds
        s.ARTIFACTS_DIR, s.LOCAL_PODS_DIR = artifacts, var / "pods"
        s.STORAGES = {
            **s.STORAGES,
            "default": {
                "BACKEND": "django.core.files.storage.FileSystemStorage",
                "OPTIONS": {"location": str(artifacts)},
            },
        }
        s.TINY_MODEL_DIR = self.tiny_model_dir
        self.previous_queue = app.conf.task_default_queue
        app.conf.task_default_queue = queue
        env = subprocess_env(
            CELERY_TASK_DEFAULT_QUEUE=queue,
            ECOLINK_VAR_DIR=str(var),
            ECOLINK_ARTIFACTS_DIR=str(artifacts),
            ECOLINK_TINY_MODEL_DIR=str(self.tiny_model_dir),
            ECOLINK_INTERNAL_URL=self.live_server.url,
            ECOLINK_BILLING_MINUTE_SECONDS=str(minute_seconds),
            ECOLINK_METER_TICK_SECONDS="0.5",
            ECOLINK_RECONCILE_SECONDS="0.5",
            ECOLINK_POD_STOP_GRACE_SECONDS="60",
            **extra_env,
        )
        self.proc = start_celery_worker(
            env,
            open(self.log, "w"),  # noqa: SIM115 - the worker outlives this call
            "-B",
            "--pool=solo",
            "--schedule",
            str(self.tmp_path / "beat-schedule"),
        )
        wait_for(lambda: "ready" in self.log.read_text(), 60, "the worker", self.log)

    def stop(self) -> None:
        if self.proc is not None:
            app.conf.task_default_queue = self.previous_queue
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
        for state in (self.tmp_path / "var" / "pods").glob("*.json"):
            pid = json.loads(state.read_text()).get("pid")
            if pid:  # leave no trainer behind
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(pid, signal.SIGKILL)


@pytest.fixture
def platform(tmp_path, tiny_model_dir, live_server, settings, redis_client, catalog):
    running = Platform(tmp_path, tiny_model_dir, live_server, settings)
    yield running
    running.stop()


def chat_jsonl(rows: int) -> bytes:
    lines = [
        json.dumps(
            {
                "messages": [
                    {"role": "user", "content": f"Status check number {i}: is the link up?"},
                    {"role": "assistant", "content": "ECOLINK-OK"},
                ]
            }
        )
        for i in range(rows)
    ]
    return ("\n".join(lines) + "\n").encode()


def ready_dataset(platform, org, rows=120) -> Dataset:
    dataset = dataset_upload(
        organization_id=org.pk,
        file=ContentFile(chat_jsonl(rows)),
        filename="chats.jsonl",
        name="status-checks",
    )
    wait_for(
        lambda: Dataset.objects.get(pk=dataset.pk).status == Dataset.Status.READY,
        120,
        "the dataset to validate",
        platform.log,
    )
    return Dataset.objects.get(pk=dataset.pk)


def approve(org, user, dataset, **hp) -> Job:
    hyperparameters = {
        "method": "auto",
        "objective": "sft",
        "epochs": 2,
        "learning_rate": 5e-3,
        "lora_r": 8,
        "lora_alpha": 16,
        "micro_batch_size": 4,
        "lora_dropout": 0.0,
        "gradient_accumulation": 1,
        "max_seq_length": 128,
        "save_steps": 5,
        "seed": 1,
        "warmup_steps": 0,
        "weight_decay": 0.0,
        "dpo_beta": 0.1,
        "target_modules": ["q_proj", "v_proj"],
        **hp,
    }
    draft = WizardDraft.objects.create(
        user=user,
        organization=org,
        data={
            "dataset": dataset.pk,
            "base_model": BaseModel.objects.get(hf_id="ecolink/tiny-qwen2").pk,
            "gpu_type": GpuType.objects.get(slug="cpu").pk,
            "gpu_count": 1,
            "region": Region.objects.get(slug="local").pk,
            "hyperparameters": hyperparameters,
        },
    )
    return job_approve(
        user=user,
        organization=org,
        token=str(draft.token),
        datasets=Dataset.objects.filter(organization=org),
    )


def job_bill(job: Job) -> int:
    keys = [f"meter:{s.pk}:" for s in BillingSession.objects.filter(job=job)]
    settles = [f"settle:{s.pk}" for s in BillingSession.objects.filter(job=job)]
    entries = LedgerEntry.objects.filter(organization_id=job.organization_id)
    return -sum(
        e.amount_micros for e in entries if e.key in settles or e.key.startswith(tuple(keys))
    )


def status_of(job) -> str:
    return Job.objects.get(pk=job.pk).status


def test_an_approved_job_trains_registers_its_adapter_and_bills_inside_the_estimate(platform):
    platform.start(minute_seconds=60)
    org = OrganizationFactory()
    fund(org, 5_000_000)
    user = member_of(org)
    job = approve(org, user, ready_dataset(platform, org))

    wait_for(lambda: status_of(job) == Job.Status.REGISTERED, 240, "registration", platform.log)
    job.refresh_from_db()
    adapter = RegisteredAdapter.objects.get(job=job)
    assert adapter.model_id == f"ft:ecolink/tiny-qwen2:{org.slug}:{job.pk}"
    assert adapter.dataset_id == job.dataset_id and adapter.dataset_hash == job.dataset.content_hash
    assert (
        adapter.hyperparameters["micro_batch_size"]
        * adapter.hyperparameters["gradient_accumulation_steps"]
        == 4
    )
    assert os.path.exists(os.path.join(adapter.path, "adapter_config.json"))
    assert adapter.manifest["dataset_hash"] == job.dataset.content_hash
    losses = list(JobMetric.objects.filter(job=job, kind="train").values_list("loss", flat=True))
    assert len(losses) >= 10 and losses[-1] < losses[0]
    assert job.current_step == job.total_steps == 48
    assert job.estimate_low_micros <= job_bill(job) <= job.estimate_high_micros
    org.refresh_from_db()
    assert org.balance_micros == ledger_sum_micros(organization_id=org.pk)
    assert not BillingSession.objects.filter(job=job, ended_at__isnull=True).exists()


def test_running_out_of_money_pauses_with_a_checkpoint_and_resume_continues_from_it(platform):
    platform.start(minute_seconds=1, ECOLINK_TRAINER_TEST_STEP_SLEEP="0.4")
    org = OrganizationFactory()
    fund(org, 5_000_000)
    user = member_of(org)
    job = approve(org, user, ready_dataset(platform, org))
    wait_for(lambda: Job.objects.get(pk=job.pk).current_step >= 6, 180, "training", platform.log)

    # Spend all but a few seconds' worth: the meter must pause the job.
    org.refresh_from_db()
    fund(org, -(org.balance_micros - 30_000), key="spent-elsewhere")
    wait_for(lambda: status_of(job) == Job.Status.PAUSED, 120, "the pause", platform.log)
    job.refresh_from_db()
    assert job.pause_reason == "balance"
    assert job.checkpoint_step > 0 and os.path.isdir(job.checkpoint_path)
    org.refresh_from_db()
    minute = 10_000  # $0.60/h for one CPU, per one-second minute
    assert -minute <= org.balance_micros < minute  # at most one minute past zero
    paused_at = LedgerEntry.objects.order_by("-pk").first().pk
    paused_step, paused_checkpoint = job.checkpoint_step, job.checkpoint_path

    time.sleep(3)  # paused time is never billed
    assert LedgerEntry.objects.order_by("-pk").first().pk == paused_at

    fund(org, 5_000_000, key="top-up")
    job_resume(job_id=job.pk)
    wait_for(lambda: status_of(job) == Job.Status.REGISTERED, 240, "registration", platform.log)
    job.refresh_from_db()
    # The second pod run started from the pause's checkpoint, not from scratch.
    metrics = JobEvent.objects.filter(job=job, kind="metrics").order_by("pk")
    second_run = metrics.last().run_id
    assert metrics.first().run_id != second_run
    assert metrics.filter(run_id=second_run).first().data["step"] == paused_step + 1
    manifest = json.loads(Path(job.manifest_path).read_text())
    assert os.path.realpath(manifest["resumed_from"]) == os.path.realpath(paused_checkpoint)
    assert job.current_step == job.total_steps
    assert BillingSession.objects.filter(job=job).count() == 2
    assert Organization.objects.get(pk=org.pk).balance_micros == ledger_sum_micros(
        organization_id=org.pk
    )


def test_cancel_in_the_middle_settles_and_stops_for_good(platform):
    platform.start(minute_seconds=60, ECOLINK_TRAINER_TEST_STEP_SLEEP="0.3")
    org = OrganizationFactory()
    fund(org, 5_000_000)
    job = approve(org, member_of(org), ready_dataset(platform, org))
    wait_for(lambda: Job.objects.get(pk=job.pk).current_step >= 3, 180, "training", platform.log)
    assert job_cancel(job_id=job.pk).outcome is Outcome.DONE
    assert job_cancel(job_id=job.pk).outcome is Outcome.ALREADY  # a second click: no change
    wait_for(lambda: status_of(job) == Job.Status.CANCELLED, 120, "the cancel", platform.log)
    job.refresh_from_db()
    assert job.retention_until is not None
    assert not RegisteredAdapter.objects.filter(job=job).exists()
    assert not BillingSession.objects.filter(job=job, ended_at__isnull=True).exists()
    assert job_bill(job) > 0


def test_a_pod_killed_with_sigkill_fails_with_a_class_and_log_lines_and_registers_nothing(
    platform,
):
    platform.start(minute_seconds=60, ECOLINK_TRAINER_TEST_STEP_SLEEP="0.3")
    org = OrganizationFactory()
    fund(org, 5_000_000)
    job = approve(org, member_of(org), ready_dataset(platform, org))
    wait_for(lambda: Job.objects.get(pk=job.pk).current_step >= 3, 180, "training", platform.log)
    job.refresh_from_db()
    state = json.loads((platform.tmp_path / "var" / "pods" / f"{job.pod_name}.json").read_text())
    os.kill(state["child_pid"], signal.SIGKILL)
    wait_for(lambda: status_of(job) == Job.Status.FAILED, 60, "the failure", platform.log)
    job.refresh_from_db()
    assert job.error_class == "oom"  # exit 137, as the kernel's OOM killer leaves it
    assert "step" in job.log_tail
    assert not RegisteredAdapter.objects.filter(job=job).exists()
    assert not BillingSession.objects.filter(job=job, ended_at__isnull=True).exists()
