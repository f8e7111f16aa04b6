"""The official `openai` package drives EcoLink end to end: its HTTP client against the
live server, a real Celery worker with beat, the local pod backend and the real trainer
on the tiny model."""

import time

import openai
import pytest

from ecolink.api.keys import api_key_create
from ecolink.finetune.models import Job
from tests.factories import OrganizationFactory, fund, member_of
from tests.finetune.test_running import Platform, chat_jsonl

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]
BASE = "ecolink/tiny-qwen2"
HARDWARE = {"gpu_type": "cpu", "region": "local", "lora": {"r": 8, "alpha": 16, "dropout": 0.0}}
# Small and quick on the CPU: 96 training examples, 4 per step, 2 epochs = 48 steps.
HYPERPARAMETERS = {
    "n_epochs": 2,
    "batch_size": 4,
    "learning_rate_multiplier": 25,  # 5e-3: the tiny model learns visibly in 48 steps
    "max_seq_length": 128,
    "save_steps": 5,
}


@pytest.fixture
def platform(tmp_path, tiny_model_dir, live_server, settings, redis_client, catalog):
    running = Platform(tmp_path, tiny_model_dir, live_server, settings)
    yield running
    running.stop()


def poll(read, done, timeout, what, log):
    deadline = time.monotonic() + timeout
    while True:
        value = read()
        if done(value):
            return value
        if time.monotonic() > deadline:
            raise AssertionError(
                f"timed out waiting for {what}: {value}\n{log.read_text()[-4000:]}"
            )
        time.sleep(0.5)


def native(job) -> Job:
    return Job.objects.get(pk=int(job.id.removeprefix("ftjob-")))


def test_the_openai_sdk_uploads_trains_pauses_resumes_and_cancels(platform, live_server):
    platform.start(minute_seconds=60, ECOLINK_TRAINER_TEST_STEP_SLEEP="0.15")
    org = OrganizationFactory()
    fund(org, 20_000_000)
    _, key = api_key_create(organization=org, name="sdk", created_by=member_of(org))
    client = openai.OpenAI(api_key=key, base_url=f"{live_server.url}/v1", max_retries=0)
    log = platform.log

    uploaded = client.files.create(file=("chats.jsonl", chat_jsonl(120)), purpose="fine-tune")
    assert uploaded.id.startswith("file-") and uploaded.purpose == "fine-tune"
    processed = poll(
        lambda: client.files.retrieve(uploaded.id),
        lambda f: f.status != "uploaded",
        120,
        "validation",
        log,
    )
    assert processed.status == "processed", processed
    assert uploaded.id in [f.id for f in client.files.list()]
    assert client.files.content(uploaded.id).content == chat_jsonl(120)

    # 1. Train to the end.
    job = client.fine_tuning.jobs.create(
        model=BASE,
        training_file=uploaded.id,
        hyperparameters=HYPERPARAMETERS,
        suffix="status",
        seed=3,
        extra_body=HARDWARE,
    )
    assert job.status == "queued" and job.model == BASE
    done = poll(
        lambda: client.fine_tuning.jobs.retrieve(job.id),
        lambda j: j.status in ("succeeded", "failed", "cancelled"),
        300,
        "training",
        log,
    )
    assert done.status == "succeeded", done
    assert done.fine_tuned_model == f"ft:{BASE}:{org.slug}:{native(job).pk}"
    assert done.trained_tokens > 0 and done.finished_at and done.error is None
    assert done.user_provided_suffix == "status" and done.seed == 3

    events = list(client.fine_tuning.jobs.list_events(job.id, limit=10))  # auto-paginates
    metrics = [e for e in events if e.type == "metrics" and "train_loss" in (e.data or {})]
    assert len(metrics) >= 10
    assert {e.data["step"] for e in metrics} >= {1, 48}
    assert len({e.id for e in events}) == len(events)  # pages don't overlap
    checkpoints = client.fine_tuning.jobs.checkpoints.list(job.id).data
    assert checkpoints and checkpoints[0].step_number >= checkpoints[-1].step_number
    assert checkpoints[0].fine_tuning_job_id == job.id
    assert checkpoints[0].metrics.train_loss is not None
    assert done.fine_tuned_model in [m.id for m in client.models.list()]
    assert client.models.retrieve(done.fine_tuned_model).owned_by == org.slug
    assert [j.id for j in client.fine_tuning.jobs.list(limit=1)] == [job.id]

    # 2. Pause while training, then resume from the checkpoint to the end.
    second = client.fine_tuning.jobs.create(
        model=BASE, training_file=uploaded.id, hyperparameters=HYPERPARAMETERS, extra_body=HARDWARE
    )
    poll(lambda: native(second), lambda j: j.checkpoint_step >= 5, 180, "a checkpoint", log)
    paused = client.fine_tuning.jobs.pause(second.id)
    assert paused.status in ("running", "paused") and paused.native_status in ("pausing", "paused")
    poll(
        lambda: client.fine_tuning.jobs.retrieve(second.id),
        lambda j: j.status == "paused",
        120,
        "the pause",
        log,
    )
    assert native(second).pause_reason == "user"
    resumed = client.fine_tuning.jobs.resume(second.id)
    assert resumed.status in ("queued", "running")
    finished = poll(
        lambda: client.fine_tuning.jobs.retrieve(second.id),
        lambda j: j.status in ("succeeded", "failed"),
        300,
        "the resumed run",
        log,
    )
    assert finished.status == "succeeded", finished
    assert native(second).run_number == 2

    # 3. Cancel.
    third = client.fine_tuning.jobs.create(
        model=BASE, training_file=uploaded.id, hyperparameters=HYPERPARAMETERS, extra_body=HARDWARE
    )
    cancelled = client.fine_tuning.jobs.cancel(third.id)
    assert cancelled.status == "cancelled"
    poll(lambda: native(third), lambda j: j.status == Job.Status.CANCELLED, 120, "the cancel", log)

    # Errors come back as the SDK's exceptions.
    with pytest.raises(openai.NotFoundError):
        client.fine_tuning.jobs.retrieve("ftjob-999999")
    with pytest.raises(openai.BadRequestError):
        client.fine_tuning.jobs.pause(third.id)
    with pytest.raises(openai.AuthenticationError):
        openai.OpenAI(api_key="eco-wrong", base_url=f"{live_server.url}/v1").models.list()
