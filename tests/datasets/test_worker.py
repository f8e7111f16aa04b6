"""Validation through a real Celery worker process, on Redis and the test database."""

import time

from django.core.files.storage import default_storage

from ecolink.datasets.models import Dataset
from tests.datasets.builders import jsonl, rows_of, upload

F = Dataset.Format
S = Dataset.Status


def wait_until_settled(dataset: Dataset, timeout: float = 60) -> Dataset:
    deadline = time.monotonic() + timeout
    while True:
        dataset.refresh_from_db()
        if dataset.is_final:
            return dataset
        assert time.monotonic() < deadline, f"still {dataset.status} after {timeout}s"
        time.sleep(0.2)


def test_the_worker_validates_uploads_and_survives_a_hostile_one(org, dataset_worker):
    lines = jsonl(rows_of(F.OPENAI)).splitlines(True)
    lines[9] = b"\xff\xfe not utf-8\n"
    hostile = upload(org, b"".join(lines), "hostile.jsonl")
    good = upload(org, jsonl(rows_of(F.OPENAI)), "good.jsonl")

    hostile = wait_until_settled(hostile)
    assert hostile.status == S.INVALID
    assert hostile.error.startswith("line 10: not valid UTF-8")

    # The same worker goes on to validate the next dataset.
    good = wait_until_settled(good)
    assert good.status == S.READY, good.error
    assert good.example_count == 120
    assert default_storage.exists(good.train_file)
