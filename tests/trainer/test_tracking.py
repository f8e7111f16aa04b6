"""Experiment tracking: MLflow with a local file store, tagged with the job id."""

import sys

import pytest

from worker.trainer import exit_codes
from worker.trainer.__main__ import run
from worker.trainer.config import ConfigError
from worker.trainer.tracking import Tracker, build_tracker


def test_mlflow_receives_params_and_metrics_tagged_with_the_job(make_config, tmp_path, monkeypatch):
    mlflow = pytest.importorskip("mlflow")
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")  # file stores are opt-in in MLflow 3
    uri = (tmp_path / "mlruns").as_uri()
    config = make_config(
        job_id="job-mlflow", tracker={"kind": "mlflow", "tracking_uri": uri, "project": "tiny"}
    )
    assert run(config) == exit_codes.OK

    client = mlflow.tracking.MlflowClient(uri)
    experiment = client.get_experiment_by_name("tiny")
    (found,) = client.search_runs([experiment.experiment_id])
    assert found.data.tags["ecolink.job_id"] == "job-mlflow"
    assert found.info.status == "FINISHED"
    assert found.data.params["method"] == "lora"
    assert found.data.params["realised.gradient_accumulation_steps"] == "2"
    history = client.get_metric_history(found.info.run_id, "loss")
    assert [m.step for m in history] == list(range(1, 9))


def test_nothing_is_tracked_or_imported_unless_configured(make_config):
    config = make_config()
    assert type(build_tracker(config)) is Tracker
    for name in ("wandb", "comet_ml"):
        assert name not in sys.modules


def test_a_configured_tracker_that_is_not_installed_is_a_config_error(make_config, monkeypatch):
    monkeypatch.setitem(sys.modules, "comet_ml", None)  # makes `import comet_ml` fail
    config = make_config(tracker={"kind": "comet"})
    with pytest.raises(ConfigError, match=r"^tracker\.kind: comet is not installed"):
        build_tracker(config)
