"""Graceful stop: SIGTERM asks the loop to finish its current step, write a checkpoint and
exit with the resumable code (75). The time this takes is bounded by one optimizer step
(or the evaluation under way), one checkpoint write and at most 10 s of flushing events to
a platform that does not answer: the pod's grace period should exceed that."""

from __future__ import annotations

import logging
import signal
import threading
from types import FrameType
from typing import Any

log = logging.getLogger(__name__)


class StopRequest:
    """Set by SIGTERM (or by `request()`); the training loop polls it after every step."""

    def __init__(self) -> None:
        self._event = threading.Event()
        self.reason: str | None = None
        self._previous: Any = None

    @property
    def requested(self) -> bool:
        return self._event.is_set()

    def request(self, reason: str = "requested") -> None:
        if not self._event.is_set():
            self.reason = reason
            self._event.set()

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        log.warning(
            "received %s: finishing the current step, then checkpointing",
            signal.Signals(signum).name,
        )
        self.request("sigterm")

    def install(self) -> StopRequest:
        """Catch SIGTERM (main thread only, as Python requires)."""
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGTERM, self._on_signal)
        return self

    def uninstall(self) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGTERM, self._previous)
            self._previous = None
