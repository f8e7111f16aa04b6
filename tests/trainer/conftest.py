"""Factories for the trainer's tests: small generated datasets with a learnable pattern
(the assistant always answers ECOLINK-OK) and run configs on the tiny model."""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import pytest

from worker.trainer.config import RunConfig

WORDS = (
    "the model train data loss step batch token learn rate adapter layer weight answer "
    "question user assistant hello thanks please yes okay fine tune GPU CPU cost balance"
).split()
ANSWER = "ECOLINK-OK"


def sentence(rng: random.Random, low: int = 3, high: int = 12) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(rng.randint(low, high)))


def chat_record(rng: random.Random, *, long: bool = False, system: bool = False) -> dict:
    messages = []
    if system:
        messages.append({"role": "system", "content": "be brief"})
    question = sentence(rng, 100, 140) if long else sentence(rng)
    messages += [
        {"role": "user", "content": question},
        {"role": "assistant", "content": ANSWER},
    ]
    return {"type": "chat", "messages": messages, "source_format": "openai"}


def preference_record(rng: random.Random) -> dict:
    return {
        "type": "preference",
        "prompt": [{"role": "user", "content": sentence(rng)}],
        "chosen": [{"role": "assistant", "content": ANSWER}],
        "rejected": [{"role": "assistant", "content": sentence(rng, 2, 4)}],
    }


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


def chat_rows(n: int, seed: int = 0, long_every: int = 0) -> list[dict]:
    rng = random.Random(seed)
    return [chat_record(rng, long=bool(long_every) and i % long_every == 0) for i in range(n)]


def preference_rows(n: int, seed: int = 0) -> list[dict]:
    rng = random.Random(seed)
    return [preference_record(rng) for _ in range(n)]


def read_events(path: Path | str) -> list[dict]:
    path = Path(path)
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def of_type(events: list[dict], kind: str) -> list[dict]:
    return [e for e in events if e["type"] == kind]


@pytest.fixture
def make_config(tmp_path, tiny_model_dir):
    """Build a RunConfig for the tiny model; datasets are written on demand."""

    def make(
        *,
        train_rows: list[dict] | None = None,
        validation_rows: list[dict] | None = None,
        folder: Path | None = None,
        **overrides: Any,
    ) -> RunConfig:
        folder = folder or tmp_path
        folder.mkdir(parents=True, exist_ok=True)
        objective = overrides.get("objective", "sft")
        if train_rows is None:
            train_rows = preference_rows(32) if objective == "dpo" else chat_rows(32)
        data: dict[str, Any] = {
            "job_id": "job-test",
            "base_model": str(tiny_model_dir),
            "train_file": str(write_jsonl(folder / "train.jsonl", train_rows)),
            "output_dir": str(folder / "out"),
            "events_file": str(folder / "events.jsonl"),
            "dataset_hash": "sha256:test",
            "effective_batch_size": 8,
            "micro_batch_size": 4,
            "max_seq_length": 256,
            "epochs": 2,
            "learning_rate": 1e-2,
            "lr_scheduler": "linear",
            "logging_steps": 1,
            "save_steps": 0,
            "eval_steps": 0,
            "lora": {"r": 8, "alpha": 16, "dropout": 0.0, "target_modules": ["all-linear"]},
        }
        if validation_rows is not None:
            data["validation_file"] = str(write_jsonl(folder / "val.jsonl", validation_rows))
        data.update(overrides)
        return RunConfig.from_dict(data)

    return make


@pytest.fixture
def make_trainer():
    """A Trainer on the tiny model, built the way `python -m worker.trainer` builds it."""
    import torch

    from worker.trainer import modeling
    from worker.trainer.data import tokenize
    from worker.trainer.distributed import Dist
    from worker.trainer.events import EventReporter
    from worker.trainer.loop import Trainer
    from worker.trainer.records import read_records

    def make(config: RunConfig, **kwargs: Any) -> Trainer:
        tokenizer = modeling.load_tokenizer(config)
        data = tokenize(
            read_records(config.train_file),
            tokenizer,
            objective=config.objective,
            train_on_inputs=config.train_on_inputs,
            max_seq_length=config.max_seq_length,
        )
        torch.manual_seed(config.seed)
        model = modeling.load_model(config, torch.device("cpu"))
        return Trainer(
            config,
            model,
            train=data,
            validation=None,
            max_length=config.max_seq_length,
            pad_id=tokenizer.pad_token_id,
            dist=Dist(),
            reporter=EventReporter(job_id=config.job_id, path=config.events_file),
            **kwargs,
        )

    return make


ROOT = Path(__file__).resolve().parents[2]


def trainer_process(config: RunConfig, tmp_path: Path, **env: str):
    """`python -m worker.trainer` on `config` in a subprocess; stderr goes to a log file."""
    import os
    import subprocess
    import sys

    path = tmp_path / f"run-{config.job_id}.json"
    path.write_text(config.to_json())
    with (tmp_path / "trainer.log").open("a") as log:
        return subprocess.Popen(
            [sys.executable, "-m", "worker.trainer", "--config", str(path)],
            cwd=ROOT,
            env={**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1", **env},
            stdout=log,
            stderr=subprocess.STDOUT,
        )


def wait_for_event(path: Path, predicate, process, timeout: float = 60.0) -> dict:
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for event in read_events(path):
            if predicate(event):
                return event
        if process.poll() is not None:
            raise AssertionError(f"trainer exited with {process.returncode} first")
        time.sleep(0.05)
    raise AssertionError("no such event in time")
