"""Atomic checkpoints: complete or ignored, never half-written, even under SIGKILL."""

import json
import os
import random
import signal
import time

import pytest
import torch
from safetensors.torch import load_file, save_file

from worker.trainer import checkpoint


def write_step(step):
    """A checkpoint writer whose every file says which step it belongs to."""

    def write(folder):
        save_file({"w": torch.full((64, 64), float(step))}, folder / "adapter_model.safetensors")
        torch.save({"step": step, "m": torch.full((256,), float(step))}, folder / "optimizer.pt")
        (folder / "trainer_state.json").write_text(json.dumps({"state": {"step": step}}))

    return write


def assert_consistent(folder):
    step = checkpoint.step_of(folder)
    assert load_file(folder / "adapter_model.safetensors")["w"].eq(step).all()
    assert torch.load(folder / "optimizer.pt", weights_only=True)["step"] == step
    assert json.loads((folder / "trainer_state.json").read_text())["state"]["step"] == step


def test_a_saved_checkpoint_is_complete_and_marked_last(tmp_path):
    path = checkpoint.save(tmp_path, 3, write_step(3))
    assert path == tmp_path / "checkpoint-3"
    assert checkpoint.is_complete(path)
    assert_consistent(path)
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".tmp")]


def test_incomplete_and_temporary_folders_are_ignored(tmp_path):
    checkpoint.save(tmp_path, 2, write_step(2))
    (tmp_path / "checkpoint-9").mkdir()  # renamed, but killed before its marker
    (tmp_path / ".tmp-checkpoint-12-999").mkdir()  # killed while writing
    assert checkpoint.latest(tmp_path) == tmp_path / "checkpoint-2"
    assert checkpoint.resolve(tmp_path) == tmp_path / "checkpoint-2"
    with pytest.raises(FileNotFoundError):
        checkpoint.resolve(tmp_path / "checkpoint-9")
    # saving step 9 again replaces the leftover
    checkpoint.save(tmp_path, 9, write_step(9))
    assert_consistent(tmp_path / "checkpoint-9")


def test_prune_keeps_the_last_n_complete_and_clears_leftovers(tmp_path):
    for step in (1, 2, 3, 4):
        checkpoint.save(tmp_path, step, write_step(step))
    (tmp_path / "checkpoint-7").mkdir()
    (tmp_path / ".tmp-checkpoint-8-1").mkdir()
    checkpoint.prune(tmp_path, keep=2)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint-3", "checkpoint-4"]


def test_sigkill_at_random_moments_leaves_a_usable_checkpoint(tmp_path):
    """A child keeps saving (slowly, so kills land inside saves); the parent kills it at a
    random moment, over and over. The latest complete checkpoint must always load whole."""
    rng = random.Random(7)
    previous, interrupted = None, 0
    for _ in range(12):
        start = checkpoint.step_of(previous) + 1 if previous else 1
        pid = os.fork()
        if pid == 0:  # child: save forever, pruning like the trainer does
            try:
                step = start
                while True:
                    checkpoint.save(tmp_path, step, write_step(step), pause_per_file=0.01)
                    checkpoint.prune(tmp_path, keep=2)
                    step += 1
            finally:
                os._exit(0)
        time.sleep(rng.uniform(0.0, 0.15))
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        leftovers = [p for p in tmp_path.iterdir() if not checkpoint.is_complete(p)]
        interrupted += bool(leftovers)
        latest = checkpoint.latest(tmp_path)
        if previous is not None:
            assert latest is not None and checkpoint.step_of(latest) >= checkpoint.step_of(previous)
        for done in checkpoint.complete_checkpoints(tmp_path):
            assert_consistent(done)
        previous = latest or previous
    assert interrupted >= 3  # the kills really did land inside saves
