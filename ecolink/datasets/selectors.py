"""Reads of datasets that pages (and the fine-tune wizard) share. Querysets come in
already scoped to an organization by `accounts.scoping`."""

from django.db.models import QuerySet

from ecolink.datasets.formats import FORMAT_LABELS
from ecolink.datasets.models import Dataset
from ecolink.datasets.sanitise import neutralise_cell


def datasets_for_list(datasets: QuerySet[Dataset]) -> QuerySet[Dataset]:
    """The list page's rows, without the (possibly large) report."""
    return datasets.defer("report").order_by("-created_at", "-id")


def ready_datasets(datasets: QuerySet[Dataset]) -> QuerySet[Dataset]:
    """Datasets a fine-tune may use."""
    return datasets_for_list(datasets).filter(status=Dataset.Status.READY)


def any_pending(datasets) -> bool:
    return any(not dataset.is_final for dataset in datasets)


def format_label(dataset: Dataset) -> str:
    return FORMAT_LABELS.get(dataset.format, dataset.format)


def preview_rows(dataset: Dataset) -> list[dict]:
    """The first records as the trainer will see them, each part made safe to show and to
    paste into a spreadsheet (autoescaping handles HTML)."""
    rows = []
    for item in dataset.report.get("preview", []):
        record = item["record"]
        parts = []
        if record["type"] == "text":
            parts.append({"label": "text", "content": neutralise_cell(record["text"])})
        elif record["type"] == "chat":
            for message in record["messages"]:
                label = message["role"]
                if message.get("weight") == 0:
                    label += " (weight 0)"
                parts.append({"label": label, "content": neutralise_cell(message["content"])})
        else:
            for side in ("prompt", "chosen", "rejected"):
                for message in record[side]:
                    parts.append(
                        {
                            "label": f"{side} · {message['role']}",
                            "content": neutralise_cell(message["content"]),
                        }
                    )
        rows.append({"number": item["number"], "type": record["type"], "parts": parts})
    return rows


def report_errors(dataset: Dataset) -> list[dict]:
    """The listed errors, with excerpts neutralised like any other shown cell."""
    return [
        {**error, "excerpt": neutralise_cell(error.get("excerpt", ""))}
        for error in dataset.report.get("errors", [])
    ]
