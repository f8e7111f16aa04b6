"""Distributed data parallel: the entry point relaunches itself through torchrun with one
process per GPU (gloo on the CPU), and the loop uses the few collectives below.

Gradients are summed explicitly after each rank has run all its micro-batches instead of
through DistributedDataParallel hooks: the ranks can then agree on an out-of-memory
backoff before any gradient collective has started, and no rank waits on another
inside a backward pass.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist

from worker.trainer.config import ConfigError

log = logging.getLogger(__name__)

STATUS_FILE_ENV = "ECOLINK_TRAINER_STATUS_FILE"
_BUCKET = 2**24  # elements per gradient all-reduce


def under_torchrun() -> bool:
    return "LOCAL_RANK" in os.environ and "WORLD_SIZE" in os.environ


def relaunch(config_path: str | Path, world_size: int) -> int:
    """Run the trainer under torchrun with `world_size` processes; return rank 0's exit code.

    torchrun turns any non-zero worker exit into its own failure code, so rank 0 writes its
    exit code to a status file. SIGTERM is passed on; torchrun forwards it to the workers."""
    if torch.cuda.is_available() and torch.cuda.device_count() < world_size:
        raise ConfigError(
            "world_size",
            f"{world_size} processes need {world_size} GPUs, {torch.cuda.device_count()} visible",
        )
    with tempfile.TemporaryDirectory(prefix="ecolink-trainer-") as folder:
        status = Path(folder) / "status"
        command = [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--standalone",
            f"--nproc_per_node={world_size}",
            "-m",
            "worker.trainer",
            "--config",
            str(config_path),
        ]
        log.info("relaunching with torchrun: %d processes", world_size)
        process = subprocess.Popen(command, env={**os.environ, STATUS_FILE_ENV: str(status)})
        previous = signal.signal(signal.SIGTERM, lambda signum, frame: process.send_signal(signum))
        try:
            returncode = process.wait()
        finally:
            signal.signal(signal.SIGTERM, previous)
        if status.exists():
            code = int(status.read_text().strip())
            return code if code or returncode == 0 else 1
        return returncode or 0


def write_status(code: int) -> None:
    path = os.environ.get(STATUS_FILE_ENV)
    if path:
        Path(path).write_text(f"{code}\n")


@dataclass
class Dist:
    """This process's place in the run; a single process is rank 0 of 1."""

    rank: int = 0
    local_rank: int = 0
    world_size: int = 1
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    def sum(self, values: list[float]) -> list[float]:
        """Element-wise sum over ranks."""
        if not self.enabled:
            return list(values)
        tensor = torch.tensor(values, dtype=torch.float64, device=self.device)
        dist.all_reduce(tensor)
        return tensor.tolist()

    def any(self, flag: bool) -> bool:
        return self.sum([float(flag)])[0] > 0

    def sum_gradients(self, params: list[torch.nn.Parameter]) -> None:
        if not self.enabled:
            return
        for p in params:
            if p.grad is None:
                p.grad = torch.zeros_like(p)
        for bucket in _buckets(params):
            grads = [p.grad for p in bucket]
            flat = torch._utils._flatten_dense_tensors(grads)
            dist.all_reduce(flat)
            for grad, synced in zip(
                grads, torch._utils._unflatten_dense_tensors(flat, grads), strict=True
            ):
                grad.copy_(synced)

    def broadcast_parameters(self, params: list[torch.nn.Parameter]) -> None:
        """Start every rank from rank 0's trainable weights."""
        if not self.enabled:
            return
        with torch.no_grad():
            for p in params:
                dist.broadcast(p.data, src=0)

    def gather(self, obj: Any) -> list[Any]:
        if not self.enabled:
            return [obj]
        out: list[Any] = [None] * self.world_size
        dist.all_gather_object(out, obj)
        return out

    def barrier(self) -> None:
        if self.enabled:
            dist.barrier()

    def close(self) -> None:
        if self.enabled and dist.is_initialized():
            dist.destroy_process_group()


def _buckets(params: list[torch.nn.Parameter]) -> list[list[torch.nn.Parameter]]:
    buckets: list[list[torch.nn.Parameter]] = [[]]
    size = 0
    for p in params:
        if size >= _BUCKET or (buckets[-1] and buckets[-1][-1].dtype != p.dtype):
            buckets.append([])
            size = 0
        buckets[-1].append(p)
        size += p.numel()
    return [b for b in buckets if b]


def setup() -> Dist:
    """Join the process group when launched by torchrun; otherwise a single process."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if torch.cuda.is_available():
        device = torch.device("cuda", local_rank)
        torch.cuda.set_device(device)
    else:
        device = torch.device("cpu")
    if world_size > 1:
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
    rank = dist.get_rank() if world_size > 1 else 0
    return Dist(rank=rank, local_rank=local_rank, world_size=world_size, device=device)
