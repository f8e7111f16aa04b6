"""Pod backends: `local` (a subprocess on this machine) and `kubernetes` (a batch/v1 Job)."""

import os

from worker.pods.base import PodBackend, PodSpec, PodStatus

__all__ = ["PodBackend", "PodSpec", "PodStatus", "get_backend"]


def get_backend(name: str | None = None, *, local_state_dir: str | None = None) -> PodBackend:
    name = name or os.environ.get("ECOLINK_POD_BACKEND", "local")
    if name == "local":
        from worker.pods.local import LocalBackend

        return LocalBackend(local_state_dir or os.path.join("var", "pods"))
    if name == "kubernetes":
        from worker.pods.kubernetes import KubernetesBackend

        return KubernetesBackend.from_environment()
    raise ValueError(f"unknown pod backend {name!r}: use local or kubernetes")
