"""Fault injection for tests, read from environment variables that production never sets.

ECOLINK_TRAINER_TEST_OOM_ABOVE=n   micro-batches of more than n examples raise an
                                   out-of-memory error, as a too-small GPU would
ECOLINK_TRAINER_TEST_STEP_SLEEP=s  sleep s seconds after every optimizer step
ECOLINK_TRAINER_TEST_SAVE_SLEEP=s  sleep s seconds per file while syncing a checkpoint
ECOLINK_TRAINER_TEST_STOP_AT_STEP=k  behave as if SIGTERM arrived during step k
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class Faults:
    oom_above: int | None = None
    step_sleep: float = 0.0
    save_sleep: float = 0.0
    stop_at_step: int | None = None

    @classmethod
    def from_env(cls) -> Faults:
        oom = os.environ.get("ECOLINK_TRAINER_TEST_OOM_ABOVE")
        stop = os.environ.get("ECOLINK_TRAINER_TEST_STOP_AT_STEP")
        return cls(
            stop_at_step=int(stop) if stop else None,
            oom_above=int(oom) if oom else None,
            step_sleep=float(os.environ.get("ECOLINK_TRAINER_TEST_STEP_SLEEP", "0")),
            save_sleep=float(os.environ.get("ECOLINK_TRAINER_TEST_SAVE_SLEEP", "0")),
        )

    def check_micro_batch(self, size: int) -> None:
        if self.oom_above is not None and size > self.oom_above:
            raise torch.OutOfMemoryError(f"simulated: micro-batch {size} > {self.oom_above}")
