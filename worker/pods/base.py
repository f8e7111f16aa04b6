"""The PodBackend protocol: how the platform runs a trainer pod, wherever it runs.

A backend launches `python -m worker.trainer --config <run.json>` for one pod run, asks it
to stop (SIGTERM, then a grace period for the checkpoint), reports its status with an exit
code and a reason, tails its logs, and deletes it. Backends hold no Django state: the
platform passes everything in a `PodSpec` and keeps the pod name it gets back.
"""

from dataclasses import dataclass, field
from typing import Literal, Protocol

PodState = Literal["pending", "running", "succeeded", "failed", "missing"]


@dataclass(frozen=True)
class PodSpec:
    job_id: int
    run: int  # the pod run (billing session) number within the job, from 1
    config_path: str  # run.json, rendered and validated by the platform
    artifacts_dir: str  # where checkpoints, the adapter, the manifest and logs go
    gpu_type: str  # catalog slug, e.g. "nvidia-a100-80gb" or "cpu"
    gpu_count: int
    # Plain settings for the pod's environment.
    env: dict[str, str] = field(default_factory=dict)
    # Secrets (the job token). A backend hands them over by reference where it can
    # (a Kubernetes Secret) and never logs, echoes or puts them in a manifest's plain env.
    secret_env: dict[str, str] = field(default_factory=dict)
    # Time the trainer gets after SIGTERM to finish its step and write a checkpoint.
    grace_seconds: int = 120
    # The pod is killed after this long whatever it is doing.
    deadline_seconds: int = 7 * 24 * 3600
    image: str = ""

    @property
    def name(self) -> str:
        return f"ecolink-job-{self.job_id}-run-{self.run}"


@dataclass(frozen=True)
class PodStatus:
    state: PodState
    exit_code: int | None = None
    # Why it ended, when the backend knows better than the exit code:
    # "oom", "evicted", "node_lost", "deadline", or "" when nothing special.
    reason: str = ""

    @property
    def finished(self) -> bool:
        return self.state in ("succeeded", "failed", "missing")


class PodBackend(Protocol):
    def launch(self, spec: PodSpec) -> str:
        """Start the pod; return its name. Launching the same spec twice starts it once."""
        ...

    def request_stop(self, name: str, grace_seconds: int) -> None:
        """SIGTERM now, SIGKILL after `grace_seconds`. Safe on a pod that already ended."""
        ...

    def status(self, name: str) -> PodStatus: ...

    def logs(self, name: str, tail: int = 50) -> list[str]: ...

    def delete(self, name: str) -> None:
        """Remove the pod (killing it if it still runs); its artifacts stay."""
        ...
