import time

from django.conf import settings
from django.core.cache import cache

from worker.celery import ping


def test_celery_settings_fit_for_money():
    assert settings.CELERY_TASK_ACKS_LATE
    assert settings.CELERY_TASK_REJECT_ON_WORKER_LOST
    timeout = settings.CELERY_BROKER_TRANSPORT_OPTIONS["visibility_timeout"]
    assert timeout > settings.CELERY_TASK_TIME_LIMIT
    assert settings.CELERY_BROKER_URL.startswith("redis://")


def test_a_real_worker_runs_a_task_sent_through_redis(celery_worker_queue):
    cache.delete("ping:hello")
    ping.apply_async(args=["hello"], queue=celery_worker_queue)
    deadline = time.monotonic() + 30
    while cache.get("ping:hello") != "pong":
        assert time.monotonic() < deadline, "the worker never ran the task"
        time.sleep(0.2)
