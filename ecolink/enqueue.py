"""The one seam between services and the task queue: work is sent by task name once the
current transaction commits, so no service imports a tasks module and a rolled-back
change never leaves a task behind. Each app's `tasks.py` defines the names."""

from functools import partial

from django.db import transaction

from worker.celery import app


def enqueue(task_name: str, *args: int | str) -> None:
    """Send `task_name(*args)` to the queue after the surrounding transaction commits
    (at once outside one). Arguments are plain ids and strings, never model instances."""
    transaction.on_commit(partial(app.send_task, task_name, args=list(args)))
