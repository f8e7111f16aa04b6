"""The trainer's progress endpoint: job-token auth, dedupe by (run_id, seq), phases move
the status, metrics feed the charts, and a bad batch is a clear 400."""

import json

import pytest
from django.urls import reverse

from ecolink.finetune.models import Job, JobEvent, JobMetric
from ecolink.finetune.pods import hash_token
from tests.finetune.factories import JobFactory

pytestmark = pytest.mark.django_db
S = Job.Status
TOKEN = "job-token-for-tests"


def send(client, job, events, token=TOKEN):
    return client.post(
        reverse("trainer_events", args=[job.pk]),
        data=json.dumps({"events": events}),
        content_type="application/json",
        headers={"Authorization": f"Bearer {token}"},
    )


def event(seq, type, **data):
    return {"seq": seq, "run_id": "run-a", "type": type, "time": 0, "data": data}


@pytest.fixture
def job(org):
    return JobFactory(organization=org, status=S.STARTING, job_token_hash=hash_token(TOKEN))


def test_a_wrong_token_is_refused(client, job):
    assert send(client, job, [event(1, "started")], token="nope").status_code == 401
    assert not JobEvent.objects.filter(job=job).exists()


def test_phases_move_the_status_and_metrics_feed_the_charts(client, job):
    response = send(
        client,
        job,
        [
            event(1, "phase", phase="training", step=0),
            event(2, "metrics", step=1, total_steps=10, loss=2.5, tokens_seen=300),
            event(3, "phase", phase="evaluating", step=1),
            event(4, "eval", step=1, eval_loss=2.7),
        ],
    )
    assert response.json() == {"accepted": 4}
    job.refresh_from_db()
    assert job.status == S.EVALUATING
    assert (job.current_step, job.total_steps, job.latest_loss) == (1, 10, 2.5)
    assert JobMetric.objects.get(job=job, kind="eval", step=1).loss == 2.7
    assert send(client, job, [event(5, "phase", phase="training")]).status_code == 200
    assert Job.objects.get(pk=job.pk).status == S.TRAINING


def test_a_retried_batch_is_stored_once(client, job):
    batch = [event(1, "metrics", step=1, loss=2.0), event(2, "metrics", step=2, loss=1.9)]
    assert send(client, job, batch).json() == {"accepted": 2}
    assert send(client, job, batch).json() == {"accepted": 0}
    assert JobEvent.objects.filter(job=job, kind="metrics").count() == 2


@pytest.mark.parametrize(
    "body", ["not json", json.dumps({"events": "x"}), json.dumps({"events": [{"seq": "1"}]})]
)
def test_a_bad_batch_is_a_clear_400(client, job, body):
    response = client.post(
        reverse("trainer_events", args=[job.pk]),
        data=body,
        content_type="application/json",
        headers={"Authorization": f"Bearer {TOKEN}"},
    )
    assert response.status_code == 400 and "error" in response.json()
