import pytest
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage

from ecolink.datasets.models import Dataset
from ecolink.datasets.services import (
    DatasetError,
    dataset_delete,
    dataset_revalidate,
    dataset_upload,
    dataset_validate,
)
from tests.datasets.builders import jsonl, rows_of, upload, validated

F = Dataset.Format
S = Dataset.Status


def test_upload_stores_the_file_under_the_orgs_prefix_and_queues_validation_on_commit(
    org, django_capture_on_commit_callbacks
):
    content = jsonl(rows_of(F.TEXT))
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        dataset = upload(org, content, "My Data.jsonl", name="  ")
    assert dataset.status == S.UPLOADED
    assert dataset.name == "My Data"
    assert dataset.size_bytes == len(content)
    assert dataset.file == f"datasets/{org.pk}/{dataset.pk}/source/My Data.jsonl"
    with default_storage.open(dataset.file, "rb") as f:
        assert f.read() == content
    assert [(c.args, c.keywords) for c in callbacks] == [
        (("datasets.validate",), {"args": [dataset.pk]})
    ]


def test_upload_refuses_what_is_over_the_size_limit(org, settings):
    settings.DATASET_MAX_UPLOAD_BYTES = 100
    with pytest.raises(DatasetError, match="larger than the 100 bytes limit"):
        upload(org, b"x" * 101)
    assert not Dataset.objects.exists()


def test_validate_twice_is_a_no_op_the_second_time(org):
    dataset = validated(org, jsonl(rows_of(F.TEXT)))
    train_file = dataset.train_file
    assert dataset_validate(dataset_id=dataset.pk) is None
    dataset.refresh_from_db()
    assert dataset.train_file == train_file
    assert default_storage.exists(train_file)


def test_validate_a_missing_dataset_is_a_no_op(db):
    assert dataset_validate(dataset_id=987654) is None


def test_a_run_picked_up_again_while_validating_completes(org):
    # A redelivered task (the worker died mid-run) finds the row still `validating`.
    dataset = upload(org, jsonl(rows_of(F.TEXT)))
    Dataset.objects.filter(pk=dataset.pk).update(status=S.VALIDATING)
    assert dataset_validate(dataset_id=dataset.pk).status == S.READY


def test_split_files_are_stored_under_the_dataset(org):
    dataset = validated(org, jsonl(rows_of(F.TEXT)))
    for key in (dataset.train_file, dataset.validation_file, dataset.test_file):
        assert key.startswith(f"datasets/{org.pk}/{dataset.pk}/")
        assert default_storage.exists(key)
    assert dataset.validated_at is not None


def test_delete_removes_the_row_and_its_files_after_commit(org, django_capture_on_commit_callbacks):
    dataset = validated(
        org,
        jsonl(rows_of(F.TEXT)),
        validation_file=ContentFile(jsonl(rows_of(F.TEXT, 10, start=900))),
        validation_filename="dev.jsonl",
    )
    keys = [
        dataset.file,
        dataset.validation_source,
        dataset.train_file,
        dataset.validation_file,
        dataset.test_file,
    ]
    assert all(default_storage.exists(key) for key in keys)
    with django_capture_on_commit_callbacks(execute=True):
        dataset_delete(dataset_id=dataset.pk)
    assert not Dataset.objects.filter(pk=dataset.pk).exists()
    assert not any(default_storage.exists(key) for key in keys)


def test_revalidate_applies_a_new_mapping_to_an_invalid_dataset(
    org, django_capture_on_commit_callbacks
):
    rows = [{"q": r["prompt"], "a": r["completion"]} for r in rows_of(F.PROMPT_COMPLETION)]
    dataset = validated(org, jsonl(rows))
    assert dataset.status == S.INVALID

    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        dataset_revalidate(
            dataset_id=dataset.pk,
            format=F.PROMPT_COMPLETION,
            prompt_column="q",
            answer_column="a",
        )
    assert len(callbacks) == 1
    dataset_validate(dataset_id=dataset.pk)
    dataset.refresh_from_db()
    assert dataset.status == S.READY
    assert dataset.error == ""


def test_revalidate_refuses_a_ready_dataset(org):
    dataset = validated(org, jsonl(rows_of(F.TEXT)))
    with pytest.raises(DatasetError):
        dataset_revalidate(dataset_id=dataset.pk, format=F.TEXT)


def test_upload_refuses_an_unknown_format(org):
    with pytest.raises(DatasetError):
        dataset_upload(
            organization_id=org.pk, file=ContentFile(b"x"), filename="x.jsonl", format="yaml"
        )
