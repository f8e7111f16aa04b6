"""The run config: defaults from the product pages, clear errors naming the field."""

import json
import subprocess
import sys

import pytest

from worker.trainer.config import ConfigError, RunConfig, describe

REQUIRED = {"job_id": "j1", "base_model": "m", "train_file": "t.jsonl", "output_dir": "out"}


def load(**extra):
    return RunConfig.from_dict({**REQUIRED, **extra})


def test_defaults_follow_the_product_pages():
    config = load()
    assert (config.lora.r, config.lora.alpha, config.lora.dropout) == (16, 32, 0.1)
    assert config.lora.target_modules == ["q_proj", "v_proj"]
    assert config.learning_rate == 2e-4
    assert config.epochs == 3
    assert config.weight_decay == 0.01
    assert config.max_seq_length == 2048
    assert config.train_on_inputs == "auto"
    assert (config.qlora.quant_type, config.qlora.double_quant) == ("nf4", True)
    assert config.method == "lora" and config.objective == "sft"
    assert config.tracker is None and config.events_url is None


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ({"lora": {"r": 0}}, "lora.r: must be between 1 and 256, got 0"),
        ({"lora": {"alpha": 513}}, "lora.alpha: must be between 1 and 512, got 513"),
        ({"lora": {"dropout": 0.6}}, "lora.dropout: must be between 0.0 and 0.5, got 0.6"),
        ({"learning_rate": 0.1}, "learning_rate: must be between 1e-06 and 0.01, got 0.1"),
        ({"epochs": 0}, "epochs: must be between 1 and 50, got 0"),
        ({"micro_batch_size": 33}, "micro_batch_size: must be between 1 and 32, got 33"),
        ({"weight_decay": 2}, "weight_decay: must be between 0.0 and 1.0, got 2.0"),
        ({"max_seq_length": 64}, "max_seq_length: must be between 128 and 4096, got 64"),
        ({"warmup_steps": -1}, "warmup_steps: must be at least 0, got -1"),
        ({"dpo": {"beta": 0}}, "dpo.beta: must be greater than 0.0, got 0.0"),
        ({"method": "adapter"}, "method: must be one of 'lora', 'qlora', 'full', 'prompt_tuning'"),
        ({"lr_scheduler": "step"}, "lr_scheduler: must be one of 'cosine', 'linear'"),
        ({"train_on_inputs": "maybe"}, "train_on_inputs: must be one of"),
        ({"qlora": {"bits": 8}}, "qlora.bits: only 4-bit QLoRA is supported"),
        ({"epochs": "3"}, "epochs: must be an integer, got '3'"),
        ({"epochs": True}, "epochs: must be an integer, got True"),
        ({"learning_rate": float("nan")}, "learning_rate: must be a finite number"),
        ({"lora": {"target_modules": "q_proj"}}, "lora.target_modules: must be a list"),
        ({"surprise": 1}, "surprise: unknown field"),
        ({"lora": {"rank": 8}}, "lora.rank: unknown field"),
        ({"tracker": {"kind": "neptune"}}, "tracker.kind: must be one of"),
        ({"tracker": {}}, "tracker.kind: is required"),
        ({"world_size": 2, "effective_batch_size": 5}, "effective_batch_size: must be a multiple"),
        ({"warmup_steps": 10, "warmup_ratio": 0.1}, "warmup_ratio: set warmup_steps or"),
        ({"early_stopping_patience": 2}, "early_stopping_patience: needs a validation_file"),
        ({"events_url": "ftp://x"}, "events_url: must be an http(s) URL"),
        ({"job_id": " "}, "job_id: must not be empty"),
    ],
)
def test_a_bad_value_names_its_field(extra, message):
    with pytest.raises(ConfigError) as caught:
        load(**extra)
    assert str(caught.value).startswith(message)


def test_a_missing_required_field_is_named():
    with pytest.raises(ConfigError, match=r"^base_model: is required"):
        RunConfig.from_dict({"job_id": "j"})


def test_round_trips_through_json(tmp_path):
    config = load(method="qlora", objective="dpo", lora={"r": 8}, tracker={"kind": "mlflow"})
    path = tmp_path / "run.json"
    path.write_text(config.to_json())
    again = RunConfig.from_json_file(path)
    assert again == config
    assert again.lora.r == 8 and again.tracker.kind == "mlflow"


def test_json_booleans_are_accepted_for_train_on_inputs():
    assert load(train_on_inputs=True).train_on_inputs == "true"
    assert load(train_on_inputs=False).train_on_inputs == "false"


def test_an_unreadable_file_is_a_config_error(tmp_path):
    bad = tmp_path / "run.json"
    bad.write_text("{not json")
    with pytest.raises(ConfigError, match=r"^config: .* is not valid JSON"):
        RunConfig.from_json_file(bad)
    with pytest.raises(ConfigError, match=r"^config: cannot read"):
        RunConfig.from_json_file(tmp_path / "missing.json")


def test_every_field_is_documented():
    schema = describe()
    for section in schema.values():
        for name, entry in section.items():
            assert entry["help"], name
    assert schema["lora"]["r"]["min"] == 1 and schema["lora"]["r"]["max"] == 256
    assert "token" not in json.dumps(sorted(schema["run"]))  # the token never sits in the file


def test_config_imports_without_torch_or_django():
    code = (
        "import sys; import worker.trainer.config, worker.trainer.records, "
        "worker.trainer.exit_codes; "
        "heavy = [m for m in ('torch', 'transformers', 'django') if m in sys.modules]; "
        "assert not heavy, heavy"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
