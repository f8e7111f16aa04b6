"""Two processes under torchrun (gloo on the CPU): a pause, a resume, and the same result
as a single process, since the effective batch and its normalisation are global."""

import json

import pytest

from worker.trainer import exit_codes
from worker.trainer.__main__ import run

from .conftest import chat_rows, of_type, read_events, trainer_process


@pytest.mark.slow
def test_two_processes_pause_resume_and_match_one_process(make_config, tmp_path):
    options = {
        "train_rows": chat_rows(32, seed=4, long_every=4),
        "epochs": 2,  # 8 steps
        "lora": {"r": 8, "alpha": 16, "dropout": 0.0, "target_modules": ["all-linear"]},
        "micro_batch_size": 2,
    }
    single = make_config(folder=tmp_path / "single", **options)
    assert run(single) == exit_codes.OK

    ddp = make_config(folder=tmp_path / "ddp", world_size=2, **options)
    first = trainer_process(ddp, tmp_path, ECOLINK_TRAINER_TEST_STOP_AT_STEP="3")
    assert first.wait(timeout=180) == exit_codes.RESUMABLE  # rank 0's code, through torchrun
    second = trainer_process(ddp, tmp_path)  # picks up its own checkpoint
    assert second.wait(timeout=180) == exit_codes.OK, (tmp_path / "trainer.log").read_text()

    events = read_events(ddp.events_file)
    assert len({e["run_id"] for e in events}) == 2  # one per launch: rank 0 alone reports
    assert [e["data"]["step"] for e in of_type(events, "checkpoint")] == [3]
    manifest = json.loads((tmp_path / "ddp" / "out" / "manifest.json").read_text())
    hp = manifest["hyperparameters"]
    assert (hp["world_size"], hp["micro_batch_size"], hp["gradient_accumulation_steps"]) == (
        2,
        2,
        2,
    )
    assert manifest["total_steps"] == 8
    assert manifest["resumed_from"].endswith("checkpoint-3")
    expected = json.loads((tmp_path / "single" / "out" / "manifest.json").read_text())
    assert manifest["metrics"]["train_loss"] == pytest.approx(
        expected["metrics"]["train_loss"], rel=1e-4
    )
