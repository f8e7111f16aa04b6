"""Experiment trackers (W&B, MLflow, Comet): params once, metrics as they come, the run
tagged with the job id. Nothing is imported or sent unless the config names a tracker."""

from __future__ import annotations

import logging
from typing import Any

from worker.trainer.config import ConfigError, RunConfig, TrackerSettings

log = logging.getLogger(__name__)


class Tracker:
    """No tracker configured: every call does nothing."""

    def log_params(self, params: dict[str, Any]) -> None:
        pass

    def log_metrics(self, metrics: dict[str, Any], step: int) -> None:
        pass

    def finish(self, status: str) -> None:
        """status: finished, stopped or failed."""


def build_tracker(config: RunConfig, *, enabled: bool = True) -> Tracker:
    settings = config.tracker
    if settings is None or not enabled:
        return Tracker()
    trackers = {"wandb": WandbTracker, "mlflow": MlflowTracker, "comet": CometTracker}
    try:
        return trackers[settings.kind](settings, config.job_id)
    except ImportError as exc:
        raise ConfigError("tracker.kind", f"{settings.kind} is not installed ({exc})") from exc


def flatten(params: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in params.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(flatten(value, f"{name}."))
        else:
            out[name] = value
    return out


def _numbers(metrics: dict[str, Any]) -> dict[str, float]:
    return {
        k: float(v)
        for k, v in metrics.items()
        if isinstance(v, int | float) and not isinstance(v, bool)
    }


class MlflowTracker(Tracker):
    def __init__(self, settings: TrackerSettings, job_id: str) -> None:
        import mlflow

        self.mlflow = mlflow
        if settings.tracking_uri:
            mlflow.set_tracking_uri(settings.tracking_uri)
        mlflow.set_experiment(settings.project or "ecolink")
        self.run = mlflow.start_run(
            run_name=settings.run_name or job_id, tags={"ecolink.job_id": job_id}
        )

    def log_params(self, params: dict[str, Any]) -> None:
        self.mlflow.log_params({k: str(v)[:500] for k, v in flatten(params).items()})

    def log_metrics(self, metrics: dict[str, Any], step: int) -> None:
        self.mlflow.log_metrics(_numbers(metrics), step=step)

    def finish(self, status: str) -> None:
        states = {"finished": "FINISHED", "stopped": "KILLED", "failed": "FAILED"}
        self.mlflow.end_run(status=states[status])


class WandbTracker(Tracker):
    def __init__(self, settings: TrackerSettings, job_id: str) -> None:
        import wandb

        self.run = wandb.init(
            project=settings.project or "ecolink",
            entity=settings.entity,
            name=settings.run_name or job_id,
            tags=[job_id],
            config={"ecolink_job_id": job_id},
        )

    def log_params(self, params: dict[str, Any]) -> None:
        self.run.config.update(flatten(params), allow_val_change=True)

    def log_metrics(self, metrics: dict[str, Any], step: int) -> None:
        self.run.log(_numbers(metrics), step=step)

    def finish(self, status: str) -> None:
        self.run.finish(exit_code=0 if status != "failed" else 1)


class CometTracker(Tracker):
    def __init__(self, settings: TrackerSettings, job_id: str) -> None:
        import comet_ml

        self.experiment = comet_ml.Experiment(
            project_name=settings.project or "ecolink", workspace=settings.entity
        )
        self.experiment.set_name(settings.run_name or job_id)
        self.experiment.add_tag(job_id)

    def log_params(self, params: dict[str, Any]) -> None:
        self.experiment.log_parameters(flatten(params))

    def log_metrics(self, metrics: dict[str, Any], step: int) -> None:
        self.experiment.log_metrics(_numbers(metrics), step=step)

    def finish(self, status: str) -> None:
        self.experiment.end()
