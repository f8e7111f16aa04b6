"""The Celery app: Redis when REDIS_URL is set, kombu's filesystem transport otherwise.

Each Django app that queues work keeps its tasks in its own `tasks.py` (found by
autodiscovery); services send them by name through `ecolink.enqueue`.
"""

import os

from celery import Celery, shared_task

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "ecolink.settings")

app = Celery("ecolink")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@shared_task(name="ecolink.ping", time_limit=10, soft_time_limit=5)
def ping(value: str) -> str:
    """Round-trip check used by the health page and the worker smoke test."""
    from django.core.cache import cache

    cache.set(f"ping:{value}", "pong", timeout=60)
    return "pong"
