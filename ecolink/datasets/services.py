"""Every change to a Dataset: upload, validate, revalidate, delete."""

import logging
import shutil
import tempfile
import uuid
from functools import partial
from pathlib import Path

from django.conf import settings
from django.core.files import File
from django.core.files.storage import default_storage
from django.db import transaction
from django.utils import timezone

from ecolink.catalog.models import BaseModel
from ecolink.datasets.formats import Mapping
from ecolink.datasets.models import Dataset
from ecolink.datasets.readers import human_bytes
from ecolink.datasets.sanitise import safe_filename
from ecolink.datasets.tokens import TokenCounter, counter_for
from ecolink.datasets.validation import Options, Outcome, Source, validate
from ecolink.enqueue import enqueue

logger = logging.getLogger(__name__)
TINY_TOKENIZER_NAME = "ecolink/tiny-qwen2"


class DatasetError(ValueError):
    """A request the datasets app refuses, with a message for the user."""


@transaction.atomic
def dataset_upload(
    *,
    organization_id: int,
    file: File,
    filename: str,
    name: str = "",
    format: str = Dataset.Format.AUTO,
    prompt_column: str = "",
    answer_column: str = "",
    validation_file: File | None = None,
    validation_filename: str = "",
    split_seed: int = 42,
    max_seq_length: int = 2048,
    tokenizer_model: str = "",
    uploaded_by_id: int | None = None,
) -> Dataset:
    """Store an uploaded file in artifact storage and queue its validation.

    `filename` is the user's and is only displayed: the storage key is ours. The size
    limit is checked here too, for callers that did not stream through the upload handler.
    """
    limit = settings.DATASET_MAX_UPLOAD_BYTES
    total = file.size + (validation_file.size if validation_file else 0)
    if total > limit:
        raise DatasetError(f"The upload is larger than the {human_bytes(limit)} limit.")
    if format not in Dataset.Format.values:
        raise DatasetError(f"Unknown format {format!r}.")
    safe_name = safe_filename(filename)
    dataset = Dataset.objects.create(
        organization_id=organization_id,
        name=(name.strip() or safe_name.rsplit(".", 1)[0])[:200],
        original_filename=safe_name,
        size_bytes=file.size,
        format=format,
        prompt_column=prompt_column.strip(),
        answer_column=answer_column.strip(),
        split_seed=split_seed,
        max_seq_length=max_seq_length,
        tokenizer_model=tokenizer_model,
        uploaded_by_id=uploaded_by_id,
    )
    prefix = f"datasets/{organization_id}/{dataset.pk}"
    saved: list[str] = []
    try:
        dataset.file = default_storage.save(f"{prefix}/source/{safe_name}", file)
        saved.append(dataset.file)
        if validation_file is not None:
            dataset.validation_source_filename = safe_filename(
                validation_filename, default="validation"
            )
            dataset.validation_source = default_storage.save(
                f"{prefix}/source/validation-{dataset.validation_source_filename}",
                validation_file,
            )
            saved.append(dataset.validation_source)
        dataset.save(update_fields=["file", "validation_source", "validation_source_filename"])
    except Exception:
        _delete_files(saved)
        raise
    # A rollback after this point (a caller's outer transaction) leaves the files behind;
    # harmless, as no row points at them.
    enqueue("datasets.validate", dataset.pk)
    return dataset


def dataset_validate(*, dataset_id: int) -> Dataset | None:
    """Validate a dataset end to end; safe to run twice, and it never raises for bad input.

    Not one transaction: validation can take minutes, so the claim (`uploaded` →
    `validating`) and the outcome are two short conditional updates, and a dataset is only
    marked ready in the same update that records complete split files.
    """
    claimed = Dataset.objects.filter(
        pk=dataset_id, status__in=[Dataset.Status.UPLOADED, Dataset.Status.VALIDATING]
    ).update(status=Dataset.Status.VALIDATING)
    dataset = Dataset.objects.filter(pk=dataset_id).first() if claimed else None
    if dataset is None:
        return None  # gone, or already settled by an earlier run
    run_prefix = f"datasets/{dataset.organization_id}/{dataset.pk}/{uuid.uuid4().hex[:12]}"
    keys: dict[str, str] = {}
    with tempfile.TemporaryDirectory(prefix="ecolink-dataset-") as workdir:
        try:
            outcome = _run_validation(dataset, Path(workdir))
            if outcome.ok:
                for split, path in outcome.split_files.items():
                    with open(path, "rb") as f:
                        keys[split] = default_storage.save(f"{run_prefix}/{split}.jsonl", File(f))
        except Exception as error:  # the worker must survive anything a file can do
            logger.exception("validating dataset %s failed", dataset_id)
            _delete_files(list(keys.values()))
            keys = {}
            outcome = _failed_outcome(error)
    try:
        return _dataset_finish(dataset_id=dataset_id, outcome=outcome, keys=keys)
    except Exception as error:
        # Never leave a dataset stuck in `validating`.
        logger.exception("recording the validation of dataset %s failed", dataset_id)
        _delete_files(list(keys.values()))
        return _dataset_finish(dataset_id=dataset_id, outcome=_failed_outcome(error), keys={})


@transaction.atomic
def _dataset_finish(*, dataset_id: int, outcome: Outcome, keys: dict[str, str]) -> Dataset | None:
    previous = (
        Dataset.objects.filter(pk=dataset_id)
        .values_list("train_file", "validation_file", "test_file")
        .first()
    )
    status = Dataset.Status.READY if outcome.ok else Dataset.Status.INVALID
    won = Dataset.objects.filter(pk=dataset_id, status=Dataset.Status.VALIDATING).update(
        status=status,
        format=outcome.format,
        report=_storable(outcome.report),
        error=_storable(outcome.error[:2000]),
        example_count=outcome.example_count,
        token_count=outcome.token_count,
        is_preference=outcome.is_preference,
        content_hash=outcome.content_hash,
        train_file=keys.get("train", ""),
        validation_file=keys.get("validation", ""),
        test_file=keys.get("test", ""),
        validated_at=timezone.now(),
    )
    if not won:
        # Deleted meanwhile, or another run settled it first: these files are nobody's.
        transaction.on_commit(partial(_delete_files, list(keys.values())))
        return None
    if previous:
        stale = [key for key in previous if key and key not in keys.values()]
        transaction.on_commit(partial(_delete_files, stale))
    return Dataset.objects.get(pk=dataset_id)


def _storable(value):
    """The report with every string fit for PostgreSQL: no NUL, no lone surrogates (user
    text reaches it through excerpts, keys and column names)."""
    if isinstance(value, str):
        if value.isascii():
            return value.replace("\x00", "\ufffd")
        return value.replace("\x00", "\ufffd").encode("utf-8", "replace").decode("utf-8")
    if isinstance(value, dict):
        return {_storable(k): _storable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_storable(v) for v in value]
    return value


def _run_validation(dataset: Dataset, workdir: Path) -> Outcome:
    main = _local_source(dataset.file, dataset.original_filename, workdir)
    extra = (
        _local_source(dataset.validation_source, dataset.validation_source_filename, workdir)
        if dataset.validation_source
        else None
    )
    options = Options(
        format=dataset.format,
        mapping=Mapping(dataset.prompt_column, dataset.answer_column),
        max_seq_length=dataset.max_seq_length,
        seed=dataset.split_seed,
        max_line_bytes=settings.DATASET_MAX_LINE_BYTES,
        max_decoded_bytes=settings.DATASET_MAX_DECODED_BYTES,
        max_decode_ratio=settings.DATASET_MAX_DECODE_RATIO,
    )
    return validate(
        main,
        options=options,
        counter=token_counter(dataset.tokenizer_model),
        workdir=workdir,
        validation=extra,
    )


def _local_source(key: str, filename: str, workdir: Path) -> Source:
    """A stored file as a local one: read in place from the local folder, or copied once
    into `workdir` from a bucket (validation reads it twice and Parquet seeks in it)."""
    try:
        path = Path(default_storage.path(key))
    except NotImplementedError:
        path = workdir / f"source-{uuid.uuid4().hex}"
        with default_storage.open(key, "rb") as remote, open(path, "wb") as local:
            shutil.copyfileobj(remote, local, 1024 * 1024)
    return Source(open=lambda: open(path, "rb"), filename=filename, size=path.stat().st_size)


def token_counter(tokenizer_model: str = "") -> TokenCounter:
    """The chosen base model's tokenizer when its files are on this machine, else the
    tiny local model's."""
    if tokenizer_model:
        local_path = (
            BaseModel.objects.filter(hf_id=tokenizer_model)
            .values_list("local_path", flat=True)
            .first()
        )
        if local_path and (Path(local_path) / "tokenizer.json").is_file():
            return counter_for(Path(local_path), name=tokenizer_model)
        logger.info("no local tokenizer for %s: counting with the tiny model", tokenizer_model)
    return counter_for(Path(settings.TINY_MODEL_DIR), name=TINY_TOKENIZER_NAME)


def _failed_outcome(error: Exception) -> Outcome:
    from celery.exceptions import SoftTimeLimitExceeded

    if isinstance(error, SoftTimeLimitExceeded):
        message = (
            "Validation ran out of time. Split the file, or ask an operator to raise the limit."
        )
    else:
        message = (
            f"Validation stopped on an internal error ({type(error).__name__}). "
            "The file was not accepted; try again, or contact an operator."
        )
    error_entry = {
        "file": "",
        "unit": "",
        "number": None,
        "kind": "internal",
        "message": message,
        "excerpt": "",
        "fatal": True,
    }
    report = {"errors": [error_entry], "error_total": 1, "error_counts": {"internal": 1}}
    return Outcome(ok=False, report=report, format="", error=message)


@transaction.atomic
def dataset_revalidate(
    *,
    dataset_id: int,
    format: str,
    prompt_column: str = "",
    answer_column: str = "",
) -> Dataset:
    """Validate an invalid dataset again with another format or column mapping."""
    if format not in Dataset.Format.values:
        raise DatasetError(f"Unknown format {format!r}.")
    updated = Dataset.objects.filter(pk=dataset_id, status=Dataset.Status.INVALID).update(
        status=Dataset.Status.UPLOADED,
        format=format,
        prompt_column=prompt_column.strip(),
        answer_column=answer_column.strip(),
        error="",
        report={},
    )
    if not updated:
        raise DatasetError("Only an invalid dataset can be validated again.")
    enqueue("datasets.validate", dataset_id)
    return Dataset.objects.get(pk=dataset_id)


@transaction.atomic
def dataset_delete(*, dataset_id: int) -> None:
    """Delete a dataset and, once that has committed, its files."""
    dataset = Dataset.objects.select_for_update().filter(pk=dataset_id).first()
    if dataset is None:
        return
    keys = [
        dataset.file,
        dataset.validation_source,
        dataset.train_file,
        dataset.validation_file,
        dataset.test_file,
    ]
    dataset.delete()
    transaction.on_commit(partial(_delete_files, [key for key in keys if key]))


def _delete_files(keys: list[str]) -> None:
    for key in keys:
        try:
            default_storage.delete(key)
        except Exception:  # a file left behind is not worth failing the caller
            logger.warning("could not delete %s from artifact storage", key, exc_info=True)
