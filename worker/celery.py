"""The Celery app: Redis when REDIS_URL is set, kombu's filesystem transport otherwise."""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "ecolink.settings")

app = Celery("ecolink")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.conf.include = ["worker.tasks"]
