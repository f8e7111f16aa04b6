"""Small generated datasets in every format, and a shortcut to upload and validate one."""

import io
import json

from django.core.files.base import ContentFile

from ecolink.datasets.models import Dataset
from ecolink.datasets.services import dataset_upload, dataset_validate

WORDS = "model train data loss step batch token learn rate adapter layer weight answer".split()


def phrase(i: int, length: int = 6) -> str:
    """A short sentence unique to `i` (so rows are not near-duplicates of each other)."""
    words = [WORDS[(i * 7 + k * 3) % len(WORDS)] for k in range(length)]
    return " ".join(words) + f" number {i}"


def openai_row(i: int) -> dict:
    return {
        "messages": [
            {"role": "system", "content": "You are terse."},
            {"role": "user", "content": f"Question {phrase(i)}?"},
            {"role": "assistant", "content": f"Answer {phrase(i + 1000)}."},
        ]
    }


def sharegpt_row(i: int) -> dict:
    return {
        "conversations": [
            {"from": "human", "value": f"Question {phrase(i)}?"},
            {"from": "gpt", "value": f"Answer {phrase(i + 1000)}."},
        ]
    }


def alpaca_row(i: int) -> dict:
    return {
        "instruction": f"Explain {phrase(i)}",
        "input": "briefly" if i % 2 else "",
        "output": f"It is {phrase(i + 1000)}.",
    }


def prompt_completion_row(i: int) -> dict:
    return {"prompt": f"Question {phrase(i)}?", "completion": f"Answer {phrase(i + 1000)}."}


def preference_row(i: int) -> dict:
    return {
        "prompt": f"Question {phrase(i)}?",
        "chosen": f"Good answer {phrase(i + 1000)}.",
        "rejected": f"Bad answer {phrase(i + 2000)}.",
    }


def text_row(i: int) -> dict:
    return {"text": f"Some training text about {phrase(i, 10)}."}


ROWS = {
    Dataset.Format.OPENAI: openai_row,
    Dataset.Format.SHAREGPT: sharegpt_row,
    Dataset.Format.ALPACA: alpaca_row,
    Dataset.Format.PROMPT_COMPLETION: prompt_completion_row,
    Dataset.Format.PREFERENCE: preference_row,
    Dataset.Format.TEXT: text_row,
}


def jsonl(rows) -> bytes:
    return b"".join(json.dumps(row).encode() + b"\n" for row in rows)


def rows_of(format: str, n: int = 120, start: int = 0) -> list[dict]:
    return [ROWS[format](i) for i in range(start, start + n)]


def csv_bytes(rows: list[dict], columns: list[str]) -> bytes:
    import csv

    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(columns)
    for row in rows:
        writer.writerow([row.get(c, "") for c in columns])
    return out.getvalue().encode()


def parquet_bytes(rows: list[dict], **write_options) -> bytes:
    import pyarrow as pa
    import pyarrow.parquet as pq

    out = io.BytesIO()
    pq.write_table(pa.Table.from_pylist(rows), out, **write_options)
    return out.getvalue()


def upload(organization, content: bytes, filename: str = "data.jsonl", **options) -> Dataset:
    return dataset_upload(
        organization_id=organization.pk,
        file=ContentFile(content, name=filename),
        filename=filename,
        **options,
    )


def validated(organization, content: bytes, filename: str = "data.jsonl", **options) -> Dataset:
    """Upload, run validation in this process, and return the settled dataset."""
    dataset = upload(organization, content, filename, **options)
    dataset_validate(dataset_id=dataset.pk)
    dataset.refresh_from_db()
    return dataset


def errors_of(dataset: Dataset) -> list[tuple[int | None, str]]:
    return [(e["number"], e["kind"]) for e in dataset.report["errors"]]


def read_split(dataset: Dataset, split: str) -> list[dict]:
    from django.core.files.storage import default_storage

    key = getattr(dataset, f"{split}_file")
    with default_storage.open(key, "rb") as f:
        return [json.loads(line) for line in f]
