"""A whole run in-process: metrics, evaluation, early stopping, truncation, manifest."""

import json
import math

import pytest

from worker.trainer import exit_codes
from worker.trainer.__main__ import run

from .conftest import chat_rows, of_type, read_events


def test_metrics_evaluation_and_manifest(make_config, tmp_path):
    config = make_config(
        train_rows=chat_rows(40, seed=1, long_every=5),
        validation_rows=chat_rows(8, seed=2),
        max_seq_length=128,
        epochs=2,
        eval_steps=2,
        save_steps=3,
        micro_batch_size=3,  # 8 per step: the hint becomes 2 x 4
    )
    assert run(config) == exit_codes.OK
    events = read_events(config.events_file)
    phases = [e["data"]["phase"] for e in of_type(events, "phase")]
    assert phases[:3] == ["preparing_data", "loading_model", "training"]
    assert "evaluating" in phases and phases[-1] == "saving"
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))

    metrics = of_type(events, "metrics")
    # the 8 long rows lose their reply to truncation, so 32 rows make 4 steps an epoch
    assert [m["data"]["step"] for m in metrics] == list(range(1, 9))
    sample = metrics[0]["data"]
    for key in ("loss", "learning_rate", "grad_norm", "tokens_per_second", "samples_per_second"):
        assert sample[key] > 0, key
    assert sample["memory_bytes"] > 0 and sample["total_steps"] == 8
    assert (sample["micro_batch_size"], sample["gradient_accumulation_steps"]) == (2, 4)
    assert sample["truncated_examples"] == 8  # every fifth row is too long for 128 tokens

    evals = of_type(events, "eval")
    assert [e["data"]["step"] for e in evals] == [2, 4, 6, 8]
    for e in evals:
        assert e["data"]["perplexity"] == pytest.approx(math.exp(e["data"]["eval_loss"]))
    assert evals[-1]["data"]["eval_loss"] < evals[0]["data"]["eval_loss"]
    assert [e["data"]["step"] for e in of_type(events, "checkpoint")] == [3, 6]

    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    hp = manifest["hyperparameters"]
    assert (hp["micro_batch_size"], hp["gradient_accumulation_steps"], hp["world_size"]) == (
        2,
        4,
        1,
    )
    assert hp["effective_batch_size"] == 8 and hp["lora"]["r"] == 8
    assert manifest["data"]["truncated_examples"] == 8
    assert manifest["data"]["train"]["dropped_examples"] == 8
    assert manifest["dataset_hash"] == "sha256:test" and manifest["seed"] == 42
    assert manifest["metrics"]["eval_loss"] == evals[-1]["data"]["eval_loss"]
    assert manifest["library_versions"]["transformers"].startswith("5.")
    finished = of_type(events, "finished")[0]["data"]
    assert finished["manifest_path"] == str(tmp_path / "out" / "manifest.json")
    assert finished["total_steps"] == 8


def test_early_stopping_on_validation_loss(make_config, tmp_path):
    # The validation replies differ from the trained one, so validation loss rises.
    validation = chat_rows(8, seed=2)
    for row in validation:
        row["messages"][-1]["content"] = "balance cost GPU"
    config = make_config(
        validation_rows=validation,
        epochs=5,
        eval_steps=1,
        early_stopping_patience=2,
    )
    assert run(config) == exit_codes.OK
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert manifest["early_stopped"] is True
    assert manifest["total_steps"] < 20
    evals = [e["data"]["eval_loss"] for e in of_type(read_events(config.events_file), "eval")]
    assert min(evals) < evals[-1]


def test_without_eval_steps_it_evaluates_at_every_epoch_end(make_config):
    config = make_config(validation_rows=chat_rows(8, seed=2), epochs=2, eval_steps=0)
    assert run(config) == exit_codes.OK
    evals = of_type(read_events(config.events_file), "eval")
    assert [e["data"]["step"] for e in evals] == [4, 8]
