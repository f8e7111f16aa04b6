"""SIGTERM: finish the step, checkpoint, report, exit 75 in bounded time. SIGKILL during
a save leaves the previous checkpoint usable."""

import json
import random
import signal
import time

import pytest

from worker.trainer import checkpoint, exit_codes
from worker.trainer.__main__ import run

from .conftest import of_type, read_events, trainer_process, wait_for_event


def test_sigterm_checkpoints_and_exits_resumable(make_config, tmp_path):
    config = make_config(epochs=3, save_steps=0)  # 12 steps; no scheduled checkpoints
    process = trainer_process(config, tmp_path, ECOLINK_TRAINER_TEST_STEP_SLEEP="0.3")
    wait_for_event(
        config.events_file, lambda e: e["type"] == "metrics" and e["data"]["step"] >= 2, process
    )
    sent = time.monotonic()
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=30) == exit_codes.RESUMABLE
    assert time.monotonic() - sent < 10

    events = read_events(config.events_file)
    (saved,) = of_type(events, "checkpoint")
    step = saved["data"]["step"]
    assert 2 <= step < 12
    assert saved["data"]["path"] == str(config.checkpoints_path / f"checkpoint-{step}")
    assert checkpoint.latest(config.checkpoints_path).name == f"checkpoint-{step}"
    assert events[-1]["type"] == "checkpoint"  # nothing after it: no "finished", no "error"
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))

    assert run(config) == exit_codes.OK  # the same job again picks the checkpoint up
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert manifest["total_steps"] == 12
    assert manifest["resumed_from"].endswith(f"checkpoint-{step}")


@pytest.mark.slow
def test_sigkill_during_saves_of_the_real_trainer_keeps_a_usable_checkpoint(make_config, tmp_path):
    """Checkpoint every step, with slowed-down saves, and kill -9 at a random moment, a few
    times over; each relaunch continues from the latest complete checkpoint."""
    config = make_config(epochs=3, save_steps=1, keep_last_checkpoints=2)
    rng = random.Random(11)
    reached = 0
    for _attempt in range(3):
        process = trainer_process(config, tmp_path, ECOLINK_TRAINER_TEST_SAVE_SLEEP="0.05")
        wait_for_event(
            config.events_file,
            lambda e, after=reached: e["type"] == "checkpoint" and e["data"]["step"] > after,
            process,
        )
        time.sleep(rng.uniform(0.0, 0.6))
        process.kill()
        process.wait()
        latest = checkpoint.latest(config.checkpoints_path)
        assert latest is not None and checkpoint.step_of(latest) > reached
        reached = checkpoint.step_of(latest)
        if reached == 12:
            break
    assert run(config) == exit_codes.OK
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert manifest["total_steps"] == 12
