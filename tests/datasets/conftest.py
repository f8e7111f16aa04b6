import pytest

from tests.factories import OrganizationFactory


@pytest.fixture(autouse=True)
def artifacts(settings, tmp_path, monkeypatch):
    """Artifact storage in a folder of this test's own, for this process and any worker
    process it starts."""
    root = tmp_path / "artifacts"
    settings.STORAGES = {
        **settings.STORAGES,
        "default": {
            "BACKEND": "django.core.files.storage.FileSystemStorage",
            "OPTIONS": {"location": str(root)},
        },
    }
    monkeypatch.setenv("ECOLINK_ARTIFACTS_DIR", str(root))
    return root


@pytest.fixture(autouse=True)
def tiny_tokenizer(settings, tiny_model_dir, monkeypatch):
    settings.TINY_MODEL_DIR = tiny_model_dir
    monkeypatch.setenv("ECOLINK_TINY_MODEL_DIR", str(tiny_model_dir))
    return tiny_model_dir


@pytest.fixture
def org(db):
    return OrganizationFactory()


@pytest.fixture
def dataset_worker(celery_worker_queue, monkeypatch):
    """A real Celery worker that validation tasks enqueued by the services reach."""
    from worker.celery import app

    monkeypatch.setitem(app.conf, "task_default_queue", celery_worker_queue)
    return celery_worker_queue
