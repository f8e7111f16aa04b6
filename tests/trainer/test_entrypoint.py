"""`python -m worker.trainer`: no Django, exit codes, and an `error` event for failures."""

import json
import subprocess
import sys

from worker.trainer import exit_codes
from worker.trainer.__main__ import run

from .conftest import ROOT, of_type, read_events, trainer_process


def test_importing_the_trainer_imports_no_django():
    code = (
        "import sys, worker.trainer, worker.trainer.__main__, worker.trainer.loop, "
        "worker.trainer.modeling, worker.trainer.distributed, worker.trainer.tracking; "
        "assert 'django' not in sys.modules and 'ecolink' not in sys.modules"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)


def test_a_bad_config_exits_78_and_reports_a_config_error(make_config, tmp_path):
    config = make_config()
    bad = config.to_dict() | {"lora": {"r": 0}}
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(bad))
    result = subprocess.run(
        [sys.executable, "-m", "worker.trainer", "--config", str(path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert result.returncode == exit_codes.CONFIG_ERROR
    assert "lora.r: must be between 1 and 256, got 0" in result.stderr
    (error,) = of_type(read_events(config.events_file), "error")
    assert error["data"]["error_class"] == "config"
    assert "lora.r" in error["data"]["message"]


def test_bad_data_exits_65_with_the_line_and_the_last_log_lines(make_config, tmp_path):
    config = make_config()
    with open(config.train_file, "a") as handle:
        handle.write('{"type": "chat", "messages": "oops"}\n')
    process = trainer_process(config, tmp_path)
    assert process.wait(timeout=120) == exit_codes.DATA_ERROR
    events = read_events(config.events_file)
    assert [e["type"] for e in events] == ["started", "phase", "error"]
    error = events[-1]["data"]
    assert error["error_class"] == "data"
    assert "train.jsonl:33" in error["message"]
    assert any("training failed (data)" in line for line in error["log_tail"])


def test_a_missing_base_model_is_a_config_error(make_config):
    config = make_config(base_model="/nowhere/model")
    assert run(config) == exit_codes.CONFIG_ERROR
    (error,) = of_type(read_events(config.events_file), "error")
    assert error["data"]["error_class"] == "config"
    assert error["data"]["message"].startswith("ConfigError: base_model:")


def test_out_of_memory_at_micro_batch_one_reports_oom(make_config, monkeypatch):
    monkeypatch.setenv("ECOLINK_TRAINER_TEST_OOM_ABOVE", "0")
    config = make_config()
    assert run(config) == exit_codes.INTERNAL_ERROR
    (error,) = of_type(read_events(config.events_file), "error")
    assert error["data"]["error_class"] == "oom"
