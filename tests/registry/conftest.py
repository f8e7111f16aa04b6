"""Fixtures for the registry: an adapter really trained (once per session) to always answer
ECOLINK-OK, the local inference server really running the tiny model, and registered jobs."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from tests.conftest import stop_process
from tests.factories import OrganizationFactory, fund
from tests.trainer.conftest import chat_rows, write_jsonl

ROOT = Path(__file__).resolve().parents[2]
PROMPT = [{"role": "user", "content": "hello, what does the model say?"}]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def trained_adapter(tiny_model_dir, tmp_path_factory) -> Path:
    """`python -m worker.trainer` on the tiny model with a pattern the base can't produce:
    every answer is ECOLINK-OK. 64 examples x 10 epochs at lr 1e-2: about 5 s on a CPU."""
    folder = tmp_path_factory.mktemp("trained")
    config = {
        "job_id": "registry-session",
        "base_model": str(tiny_model_dir),
        "train_file": str(write_jsonl(folder / "train.jsonl", chat_rows(64, seed=1))),
        "output_dir": str(folder / "out"),
        "events_file": str(folder / "events.jsonl"),
        "dataset_hash": "sha256:registry-test",
        "effective_batch_size": 8,
        "micro_batch_size": 8,
        "max_seq_length": 128,
        "epochs": 10,
        "learning_rate": 1e-2,
        "lr_scheduler": "linear",
        "logging_steps": 10,
        "save_steps": 0,
        "eval_steps": 0,
        "seed": 7,
        "lora": {"r": 8, "alpha": 16, "dropout": 0.0, "target_modules": ["all-linear"]},
    }
    (folder / "run.json").write_text(json.dumps(config))
    with (folder / "trainer.log").open("w") as log:
        code = subprocess.call(
            [sys.executable, "-m", "worker.trainer", "--config", str(folder / "run.json")],
            cwd=ROOT,
            env={**_env(), "HF_HUB_OFFLINE": "1"},
            stdout=log,
            stderr=subprocess.STDOUT,
            timeout=300,
        )
    assert code == 0, (folder / "trainer.log").read_text()[-3000:]
    adapter = folder / "out" / "adapter"
    assert (adapter / "adapter_model.safetensors").is_file()
    return adapter


def _env() -> dict[str, str]:
    import os

    return {**os.environ, "OMP_NUM_THREADS": "1"}


@pytest.fixture(scope="session")
def inference_server(tiny_model_dir):
    """The local inference server (`python -m worker.inference`) on the tiny model."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log_path = Path(tiny_model_dir).parent / f"inference-{port}.log"
    log = log_path.open("w")
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "worker.inference",
            "--model",
            str(tiny_model_dir),
            "--served-model-name",
            "ecolink/tiny-qwen2",
            "--port",
            str(port),
        ],
        cwd=ROOT,
        env=_env(),
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + 90
    while True:
        try:
            urllib.request.urlopen(f"{url}/health", timeout=2).close()
            break
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                raise RuntimeError(
                    "inference server did not start:\n" + log_path.read_text()
                ) from None
            time.sleep(0.3)
    yield url
    stop_process(proc)
    log.close()


@pytest.fixture
def other_org(catalog):
    org = OrganizationFactory()
    fund(org, 100_000_000)
    return org


@pytest.fixture
def local_instance(catalog, inference_server):
    from ecolink.catalog.models import BaseModel
    from ecolink.registry.services import instance_register

    return instance_register(
        name="local-tiny",
        base_model=BaseModel.objects.get(hf_id="ecolink/tiny-qwen2"),
        backend="local",
        endpoint_url=inference_server,
    )


@pytest.fixture
def register(trained_adapter, tmp_path):
    """register(org) -> a registered job's RegisteredAdapter, with its own copy of the
    trained adapter (so deleting it leaves the session's copy alone)."""
    from ecolink.finetune.actions import model_id_for
    from ecolink.finetune.models import Job
    from ecolink.registry.models import RegisteredAdapter
    from tests.finetune.factories import JobFactory

    def make(org, *, method: str = "lora") -> RegisteredAdapter:
        job = JobFactory(organization=org, status=Job.Status.REGISTERED, method=method)
        folder = tmp_path / f"job-{job.pk}" / "adapter"
        shutil.copytree(trained_adapter, folder)
        Job.objects.filter(pk=job.pk).update(adapter_path=str(folder))
        return RegisteredAdapter.objects.create(
            organization=org,
            job=job,
            model_id=model_id_for(job),
            base_model=job.base_model,
            dataset=job.dataset,
            dataset_hash="sha256:registry-test",
            method=method,
            hyperparameters={"epochs": 10, "learning_rate": 0.01, "lora": {"r": 8}},
            metrics={"train_loss": 0.01},
            path=str(folder),
            manifest={"job_id": str(job.pk), "base_model": "ecolink/tiny-qwen2"},
        )

    return make
