"""Artifact storage on an S3-compatible bucket: a local S3 emulator (moto's server)."""

import pytest
from django.core.files.storage import default_storage

from ecolink.datasets.models import Dataset
from ecolink.datasets.services import dataset_delete
from tests.datasets.builders import jsonl, parquet_bytes, read_split, rows_of, validated

moto_server = pytest.importorskip("moto.server", reason="moto[server] is the local S3 emulator")

BUCKET = "ecolink-test-artifacts"


@pytest.fixture
def s3_bucket(settings):
    import boto3

    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    credentials = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing"}
    boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1", **credentials).create_bucket(
        Bucket=BUCKET
    )
    # As settings.py configures it when ECOLINK_S3_BUCKET is set.
    settings.STORAGES = {
        **settings.STORAGES,
        "default": {
            "BACKEND": "storages.backends.s3.S3Storage",
            "OPTIONS": {
                "bucket_name": BUCKET,
                "endpoint_url": endpoint,
                "access_key": "testing",
                "secret_key": "testing",
                "region_name": "us-east-1",
                "file_overwrite": False,
                "max_memory_size": settings.FILE_UPLOAD_MAX_MEMORY_SIZE,
            },
        },
    }
    yield BUCKET
    server.stop()


def test_upload_validate_and_delete_on_a_bucket(org, s3_bucket, django_capture_on_commit_callbacks):
    dataset = validated(org, jsonl(rows_of(Dataset.Format.OPENAI)))
    assert dataset.status == Dataset.Status.READY, dataset.error
    assert default_storage.exists(dataset.file)
    assert len(read_split(dataset, "train")) == dataset.report["split"]["counts"]["train"]

    keys = [dataset.file, dataset.train_file, dataset.validation_file, dataset.test_file]
    with django_capture_on_commit_callbacks(execute=True):
        dataset_delete(dataset_id=dataset.pk)
    assert not any(default_storage.exists(key) for key in keys)


def test_parquet_from_a_bucket(org, s3_bucket):
    dataset = validated(org, parquet_bytes(rows_of(Dataset.Format.PROMPT_COMPLETION)), "qa.parquet")
    assert dataset.status == Dataset.Status.READY, dataset.error
