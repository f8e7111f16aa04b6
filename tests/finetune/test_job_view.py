"""The job page: a panel per state, the curated settings, tabs, chart data, and that no
secret or environment value ever reaches a page."""

import json
import os

import pytest
from django.urls import reverse

from ecolink.finetune.models import Job, JobEvent, JobMetric
from ecolink.finetune.runconfig import job_artifacts_dir
from ecolink.finetune.selectors import batch_shape
from tests.factories import fund
from tests.finetune.factories import BillingSessionFactory, JobFactory

pytestmark = pytest.mark.django_db
S = Job.Status


def page(client, job, **params) -> str:
    response = client.get(reverse("finetune:detail", args=[job.pk]), params)
    assert response.status_code == 200
    return response.content.decode()


def status_panel(client, job) -> str:
    return client.get(reverse("finetune:status", args=[job.pk])).content.decode()


@pytest.mark.parametrize(
    ("status", "marker"),
    [
        (S.EVALUATING, 'data-testid="eval-panel"'),
        (S.PAUSED, 'data-testid="paused-banner"'),
        (S.FAILED, 'data-testid="failed-panel"'),
        (S.CANCELLED, 'data-testid="cancelled-panel"'),
        (S.TRAINING, 'data-testid="job-progress"'),
    ],
)
def test_each_state_has_its_own_panel(logged_in, org, status, marker):
    job = JobFactory(organization=org, status=status, total_steps=20, current_step=5)
    body = status_panel(logged_in, job)
    assert marker in body
    others = {
        'data-testid="eval-panel"',
        'data-testid="paused-banner"',
        'data-testid="failed-panel"',
    }
    assert not any(m in body for m in others - {marker})


def test_the_training_panel_shows_steps_remaining_eta_throughput_and_cost(logged_in, org):
    job = JobFactory(
        organization=org,
        status=S.TRAINING,
        total_steps=100,
        current_step=40,
        trained_tokens=40 * 500,
        estimate_low_micros=1_000_000,
        estimate_high_micros=3_000_000,
    )
    JobMetric.objects.create(job=job, kind="train", step=40, loss=1.5, tokens_per_second=1000.0)
    BillingSessionFactory(
        job=job,
        run=1,
        charged_micros=1_250_000,
    )
    body = status_panel(logged_in, job)
    # 60 steps left × 500 tokens per step ÷ 1000 tokens/s = 30 s.
    assert "Step <strong>40</strong> / 100 · 60 steps remaining · ETA 30 s · 1000 tokens/s" in body
    assert "$1.25</strong> of an estimated $1.00 – $3.00" in body


def test_paused_by_balance_links_to_top_up_and_back(logged_in, org):
    job = JobFactory(
        organization=org,
        status=S.PAUSED,
        pause_reason="balance",
        checkpoint_path="/x/checkpoint-6",
        checkpoint_step=6,
        total_steps=12,
        estimate_high_micros=400_000_000,
    )
    body = status_panel(logged_in, job)  # the org has $100
    assert "Balance reached zero." in body and "checkpoint at step 6 of 12" in body
    top_up = reverse("billing:billing") + "?next=" + reverse("finetune:detail", args=[job.pk])
    assert f'href="{top_up}"' in body
    # Half the steps are left: half the upper bound, $200.
    assert "Resume needs a balance of $200.00" in body and "you have $100.00" in body
    assert "disabled" in body[body.index('data-testid="resume"') :][:80]
    fund(org, 100_000_000, key="enough")
    body = status_panel(logged_in, job)
    assert "Resume needs" not in body
    assert "disabled" not in body[body.index('data-testid="resume"') :][:80]


def test_paused_by_the_user_says_so(logged_in, org):
    job = JobFactory(organization=org, status=S.PAUSED, pause_reason="user")
    assert "Paused by you." in status_panel(logged_in, job)


def test_a_failed_job_shows_its_error_class_and_last_log_lines(logged_in, org):
    job = JobFactory(
        organization=org,
        status=S.FAILED,
        error_class="oom",
        status_reason="Out of memory",
        log_tail="line one\nCUDA out of memory",
    )
    body = status_panel(logged_in, job)
    assert "Failed: oom" in body and "CUDA out of memory" in body


def test_a_cancelled_job_shows_settled_cost_and_deletion_date(logged_in, org):
    job = JobFactory(organization=org, status=S.QUEUED)
    logged_in.post(reverse("finetune:action", args=[job.pk, "cancel"]))
    job.refresh_from_db()
    body = status_panel(logged_in, job)
    assert job.retention_until.strftime("%Y-%m-%d") in body and "settled" in body


def test_the_curated_view_reconstructs_the_effective_batch(logged_in, org):
    config = {
        "epochs": 2,
        "learning_rate": 0.0002,
        "effective_batch_size": 16,
        "micro_batch_size": 4,
        "world_size": 2,
        "lora": {"r": 8, "alpha": 16, "dropout": 0.05, "target_modules": ["q_proj", "v_proj"]},
    }
    job = JobFactory(organization=org, status=S.STARTING, method="lora", run_config=config)
    assert "16 = 4 × 2 × 2 (planned)" in page(logged_in, job)
    # The trainer backed off to a micro-batch of 2 and said so: the view follows it.
    JobEvent.objects.create(
        job=job,
        kind="phase",
        data={
            "phase": "training",
            "micro_batch_size": 2,
            "gradient_accumulation_steps": 4,
            "world_size": 2,
        },
    )
    body = page(logged_in, job)
    assert "16 = 2 × 4 × 2" in body and "(planned)" not in body
    assert "r 8, alpha 16, dropout 0.05, targets q_proj, v_proj" in body


def test_planned_batch_shape_matches_the_trainer_rule():
    # The largest micro-batch up to the hint that divides each rank's share.
    shape = batch_shape({"effective_batch_size": 12, "micro_batch_size": 5, "world_size": 1})
    assert (shape.micro, shape.accumulation, shape.effective) == (4, 3, 12)


def test_the_checkpoint_reference_appears_once_there_is_one(logged_in, org):
    job = JobFactory(organization=org, status=S.TRAINING)
    assert "none yet" in page(logged_in, job)
    Job.objects.filter(pk=job.pk).update(
        checkpoint_path=str(job_artifacts_dir(job.pk) / "checkpoints" / "checkpoint-8"),
        checkpoint_step=8,
    )
    assert "checkpoint-8 (step 8)" in page(logged_in, job)


def test_metrics_json_returns_only_new_points(logged_in, org):
    job = JobFactory(organization=org, status=S.TRAINING)
    for step in (1, 2, 3):
        JobMetric.objects.create(job=job, kind="train", step=step, loss=3.0 - step / 10)
    JobMetric.objects.create(job=job, kind="eval", step=2, loss=2.5)
    url = reverse("finetune:metrics", args=[job.pk])
    everything = logged_in.get(url).json()
    assert everything["train"]["step"] == [1, 2, 3] and everything["eval"]["loss"] == [2.5]
    assert everything["live"] is True
    newer = logged_in.get(url, {"after_train": 2, "after_eval": 2}).json()
    assert newer["train"]["step"] == [3] and newer["eval"]["step"] == []


def test_logs_tab_filters_by_source_and_level(logged_in, org):
    job = JobFactory(organization=org, status=S.FAILED)
    log = job_artifacts_dir(job.pk) / "logs" / "run-1.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    log.write_text(
        "2026-11-23 10:00:00,001 INFO worker.trainer: step 1 loss 2.0\n"
        "2026-11-23 10:00:01,002 ERROR worker.trainer: it broke\n"
        "Traceback (most recent call last):\n"
        "2026-11-23 10:00:02,003 WARNING worker.trainer: slow step\n"
    )
    JobEvent.objects.create(job=job, kind="status", message="Starting pod run 1", data={})
    url = reverse("finetune:tab", args=[job.pk, "logs"])
    everything = logged_in.get(url, {"source": "training", "level": "DEBUG"}).content.decode()
    assert "step 1 loss 2.0" in everything and "slow step" in everything
    errors = logged_in.get(url, {"source": "training", "level": "ERROR"}).content.decode()
    assert "it broke" in errors and "Traceback" in errors  # a traceback keeps its level
    assert "step 1 loss" not in errors and "slow step" not in errors
    deployment = logged_in.get(url, {"source": "deployment"}).content.decode()
    assert "Starting pod run 1" in deployment and "it broke" not in deployment


def test_events_tab_lists_the_jobs_events(logged_in, org):
    job = JobFactory(organization=org, status=S.TRAINING)
    JobEvent.objects.create(job=job, kind="checkpoint", message="Checkpoint at step 4")
    body = logged_in.get(reverse("finetune:tab", args=[job.pk, "events"])).content.decode()
    assert "Checkpoint at step 4" in body


def test_job_list_shows_cost_and_filters_by_status(logged_in, org):
    training = JobFactory(organization=org, status=S.TRAINING, name="alpha-run")
    JobFactory(organization=org, status=S.FAILED, name="beta-run")
    JobFactory(status=S.TRAINING, name="someone-elses")
    BillingSessionFactory(
        job=training,
        run=1,
        charged_micros=2_500_000,
    )
    body = logged_in.get(reverse("finetune:list")).content.decode()
    assert "alpha-run" in body and "beta-run" in body and "someone-elses" not in body
    assert "$2.50" in body
    failed = logged_in.get(reverse("finetune:list"), {"status": "failed"}).content.decode()
    assert "beta-run" in failed and "alpha-run" not in failed


def test_another_orgs_job_pages_are_404(logged_in):
    other = JobFactory(status=S.TRAINING)
    for name, args in [
        ("finetune:detail", [other.pk]),
        ("finetune:status", [other.pk]),
        ("finetune:metrics", [other.pk]),
        ("finetune:tab", [other.pk, "logs"]),
    ]:
        assert logged_in.get(reverse(name, args=args)).status_code == 404


def test_no_secret_or_environment_value_reaches_any_page(logged_in, org, settings, monkeypatch):
    secret = "sk_live_PLACED_IN_THE_JOBS_ENVIRONMENT"
    monkeypatch.setenv("HF_TOKEN", secret)
    settings.STRIPE_SECRET_KEY = "sk_test_platform_stripe_key"
    job = JobFactory(
        organization=org,
        status=S.TRAINING,
        job_token_hash="f" * 64,
        pod_name="ecolink-job-pod",
        run_config={
            "effective_batch_size": 8,
            "micro_batch_size": 4,
            "world_size": 1,
            # A user may put secrets in a job's environment and tracker settings.
            "env": {"HF_TOKEN": secret, "WANDB_API_KEY": secret},
            "tracker": {"kind": "mlflow", "tracking_uri": f"https://u:{secret}@mlflow.example"},
            "events_url": "http://internal.example/internal/jobs/1/events",
            "output_dir": "/srv/artifacts/private-path",
        },
    )
    JobEvent.objects.create(
        job=job, kind="started", message="Started", data={"env": {"HF_TOKEN": secret}}
    )
    pages = [page(logged_in, job, tab=tab) for tab in ("metrics", "logs", "events")] + [
        status_panel(logged_in, job),
        logged_in.get(reverse("finetune:metrics", args=[job.pk])).content.decode(),
        logged_in.get(reverse("finetune:list")).content.decode(),
        logged_in.get(
            reverse("finetune:tab", args=[job.pk, "logs"]), {"source": "build"}
        ).content.decode(),
    ]
    values = [
        secret,
        settings.STRIPE_SECRET_KEY,
        settings.SECRET_KEY,
        job.job_token_hash,
        "internal.example",
        "private-path",
        "ecolink-job-pod",
        os.environ.get("DATABASE_URL") or settings.DATABASES["default"]["NAME"],
    ]
    for body in pages:
        for value in values:
            assert value not in body


def test_a_tab_fragment_keeps_the_tab_bar(logged_in, org):
    job = JobFactory(organization=org, status=S.TRAINING)
    body = logged_in.get(reverse("finetune:tab", args=[job.pk, "logs"])).content.decode()
    for name in ("metrics", "logs", "events"):
        assert f'data-testid="tab-{name}"' in body


def test_a_running_pod_without_a_local_log_file_is_read_through_its_backend(
    logged_in, org, settings, tmp_path
):
    # A remote pod leaves no file beside the artifacts: its backend holds the log.
    settings.LOCAL_PODS_DIR = tmp_path / "pods"
    settings.LOCAL_PODS_DIR.mkdir()
    remote_log = tmp_path / "elsewhere.log"
    remote_log.write_text("2026-11-23 10:00:00,001 INFO worker.trainer: step 3 from the pod\n")
    job = JobFactory(organization=org, status=S.TRAINING, pod_name="ecolink-job-remote")
    (settings.LOCAL_PODS_DIR / "ecolink-job-remote.json").write_text(
        json.dumps({"log": str(remote_log)})
    )
    body = logged_in.get(reverse("finetune:tab", args=[job.pk, "logs"])).content.decode()
    assert "step 3 from the pod" in body
