"""Paused at step k and resumed, a run ends at the same step with the loss of a run that
was never interrupted: model, optimizer, scheduler, RNG and data position all come back."""

import json

import pytest

from worker.trainer import exit_codes
from worker.trainer.__main__ import run

from .conftest import chat_rows, of_type, preference_rows, read_events

STEPS = 12  # 32 examples / 8 per step x 3 epochs


@pytest.fixture
def rows():
    return chat_rows(32, seed=5, long_every=4)


def losses(config):
    return {
        e["data"]["step"]: e["data"]["loss"]
        for e in of_type(read_events(config.events_file), "metrics")
    }


@pytest.mark.parametrize(
    ("method", "objective"),
    [("lora", "sft"), ("qlora", "sft"), ("full", "sft"), ("prompt_tuning", "sft"), ("lora", "dpo")],
)
def test_paused_and_resumed_ends_like_an_uninterrupted_run(
    make_config, tmp_path, monkeypatch, rows, method, objective
):
    # Dropout on, warmup and a cosine schedule: resume must restore RNG and scheduler too.
    options = {
        "train_rows": rows if objective == "sft" else preference_rows(32, seed=5),
        "method": method,
        "objective": objective,
        "epochs": 3,
        "warmup_steps": 2,
        "lr_scheduler": "cosine",
        "learning_rate": 5e-3,
        "lora": {"r": 8, "alpha": 16, "dropout": 0.1, "target_modules": ["all-linear"]},
        "logging_steps": 3,  # windows that straddle the pause
    }
    straight = make_config(folder=tmp_path / "straight", **options)
    assert run(straight) == exit_codes.OK

    paused = make_config(folder=tmp_path / "paused", **options)
    monkeypatch.setenv("ECOLINK_TRAINER_TEST_STOP_AT_STEP", "5")
    assert run(paused) == exit_codes.RESUMABLE
    monkeypatch.delenv("ECOLINK_TRAINER_TEST_STOP_AT_STEP")
    (saved,) = of_type(read_events(paused.events_file), "checkpoint")
    assert saved["data"]["step"] == 5
    assert not (tmp_path / "paused" / "out" / "manifest.json").exists()

    resumed = make_config(
        folder=tmp_path / "paused", resume_from=str(paused.checkpoints_path), **options
    )
    assert run(resumed) == exit_codes.OK

    first, second = (
        json.loads((tmp_path / "straight/out/manifest.json").read_text()),
        json.loads((tmp_path / "paused/out/manifest.json").read_text()),
    )
    assert first["total_steps"] == second["total_steps"] == STEPS
    assert second["resumed_from"].endswith("checkpoint-5")
    assert second["metrics"]["train_loss"] == pytest.approx(
        first["metrics"]["train_loss"], rel=1e-5
    )
    after_pause = {s: v for s, v in losses(resumed).items() if s > 6}
    assert after_pause == pytest.approx({s: losses(straight)[s] for s in after_pause}, rel=1e-5)


def test_resume_skips_incomplete_checkpoints(make_config, tmp_path, monkeypatch):
    config = make_config(save_steps=2, epochs=1)  # 4 steps, checkpoints at 2 and 4
    monkeypatch.setenv("ECOLINK_TRAINER_TEST_STOP_AT_STEP", "3")
    assert run(config) == exit_codes.RESUMABLE
    monkeypatch.delenv("ECOLINK_TRAINER_TEST_STOP_AT_STEP")
    root = config.checkpoints_path
    assert sorted(p.name for p in root.iterdir()) == ["checkpoint-2", "checkpoint-3"]
    (root / "checkpoint-4").mkdir()  # renamed but never marked complete
    (root / ".tmp-checkpoint-5-123").mkdir()

    # no resume_from: an earlier attempt of the same job left checkpoints, so use them
    assert run(config) == exit_codes.OK
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert manifest["resumed_from"].endswith("checkpoint-3")
    assert manifest["total_steps"] == 4


def test_checkpoints_of_another_job_are_refused(make_config, tmp_path, monkeypatch):
    config = make_config(epochs=1)
    monkeypatch.setenv("ECOLINK_TRAINER_TEST_STOP_AT_STEP", "1")
    assert run(config) == exit_codes.RESUMABLE
    monkeypatch.delenv("ECOLINK_TRAINER_TEST_STOP_AT_STEP")
    other = make_config(epochs=1, job_id="job-other")
    assert run(other) == exit_codes.CONFIG_ERROR
    error = of_type(read_events(other.events_file), "error")[-1]["data"]
    assert error["error_class"] == "config"
    assert "checkpoint_dir" in error["message"]


def test_a_stop_before_the_first_step_still_leaves_a_checkpoint(make_config, tmp_path):
    from worker.trainer.signals import StopRequest

    config = make_config(epochs=1)
    stop = StopRequest()
    stop.request("sigterm")  # arrived while the model was loading
    assert run(config, stop=stop) == exit_codes.RESUMABLE
    (saved,) = of_type(read_events(config.events_file), "checkpoint")
    assert saved["data"] == {
        "step": 0,
        "path": str(config.checkpoints_path / "checkpoint-0"),
        "reason": "sigterm",
    }
    assert run(config) == exit_codes.OK
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert manifest["total_steps"] == 4
