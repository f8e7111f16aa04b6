"""Progress events for the platform: numbered, batched JSON POSTs from a background thread
(retried with backoff, never blocking training), and/or JSON lines in a local file.

Body of each POST, with `Authorization: Bearer $ECOLINK_JOB_TOKEN`::

    {"job_id": ..., "events": [{"seq": 1, "run_id": ..., "type": ..., "time": ..., "data": {}}]}

`seq` rises from 1 within one process start; `run_id` is random per start, so
(run_id, seq) identifies an event and the platform can drop duplicates.
"""

from __future__ import annotations

import collections
import json
import logging
import os
import threading
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path
from typing import Any

from worker.trainer.config import JOB_TOKEN_ENV

log = logging.getLogger(__name__)

EVENT_TYPES = ("started", "phase", "metrics", "eval", "checkpoint", "finished", "error")
PHASES = ("loading_model", "preparing_data", "training", "evaluating", "saving")


class EventReporter:
    """Sends events; a disabled reporter (non-zero ranks) numbers and drops them."""

    def __init__(
        self,
        *,
        job_id: str,
        url: str | None = None,
        path: str | Path | None = None,
        token: str | None = None,
        enabled: bool = True,
        flush_interval: float = 0.5,
        request_timeout: float = 5.0,
        initial_backoff: float = 0.5,
        max_backoff: float = 30.0,
        max_batch: int = 200,
        max_pending: int = 10_000,
        close_timeout: float = 10.0,
    ) -> None:
        self.job_id = job_id
        self.run_id = uuid.uuid4().hex
        self.url = url if enabled else None
        self.path = Path(path) if path and enabled else None
        self.token = token if token is not None else os.environ.get(JOB_TOKEN_ENV)
        self.flush_interval = flush_interval
        self.request_timeout = request_timeout
        self.initial_backoff = initial_backoff
        self.max_backoff = max_backoff
        self.max_batch = max_batch
        self.max_pending = max_pending
        self.close_timeout = close_timeout
        self.dropped = 0  # events lost because the platform stayed away too long
        self._seq = 0
        self._lock = threading.Lock()
        self._pending: collections.deque[dict[str, Any]] = collections.deque()
        self._has_events = threading.Condition(self._lock)
        self._closing = threading.Event()
        self._deadline = float("inf")
        self._thread: threading.Thread | None = None
        if self.url:
            if not self.token:
                log.warning("%s is not set: events are sent without a token", JOB_TOKEN_ENV)
            self._thread = threading.Thread(target=self._send_loop, name="events", daemon=True)
            self._thread.start()
        if self.path:
            self.path.parent.mkdir(parents=True, exist_ok=True)

    def emit(self, type: str, data: dict[str, Any] | None = None) -> dict[str, Any]:
        if type not in EVENT_TYPES:
            raise ValueError(f"unknown event type {type!r}")
        with self._lock:
            self._seq += 1
            event = {
                "seq": self._seq,
                "run_id": self.run_id,
                "type": type,
                "time": time.time(),
                "data": data or {},
            }
            if self.path:
                with self.path.open("a", encoding="utf-8") as handle:
                    handle.write(json.dumps(event, default=str) + "\n")
            if self._thread:
                self._pending.append(event)
                if len(self._pending) > self.max_pending:
                    self._pending.popleft()
                    self.dropped += 1
                self._has_events.notify()
        return event

    def phase(self, name: str, **data: Any) -> dict[str, Any]:
        if name not in PHASES:
            raise ValueError(f"unknown phase {name!r}")
        return self.emit("phase", {"phase": name, **data})

    def close(self, timeout: float | None = None) -> None:
        """Flush what is pending, giving up after `timeout` seconds."""
        if self._thread is None:
            return
        timeout = self.close_timeout if timeout is None else timeout
        with self._lock:
            self._deadline = time.monotonic() + timeout
            self._closing.set()
            self._has_events.notify()
        self._thread.join(timeout + 1.0)
        if self._pending:
            log.warning("%d events not delivered to %s", len(self._pending), self.url)
        self._thread = None

    def __enter__(self) -> EventReporter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _send_loop(self) -> None:
        delay = 0.0
        while True:
            with self._lock:
                while not self._pending and not self._closing.is_set():
                    self._has_events.wait()
                if not self._pending:
                    return
            if not self._closing.is_set():  # let a burst of events share one request
                self._closing.wait(self.flush_interval)
            with self._lock:
                batch = [self._pending[i] for i in range(min(len(self._pending), self.max_batch))]
            outcome = self._post(batch)
            with self._lock:
                if outcome != "retry":
                    last = batch[-1]["seq"]
                    while self._pending and self._pending[0]["seq"] <= last:
                        self._pending.popleft()
                    delay = 0.0
                    continue
            remaining = self._deadline - time.monotonic()
            if remaining <= 0:
                return
            delay = min(self.max_backoff, delay * 2 if delay else self.initial_backoff)
            if self._closing.is_set():
                time.sleep(min(delay, remaining))
            else:
                self._closing.wait(delay)

    def _post(self, batch: list[dict[str, Any]]) -> str:
        """'ok', 'drop' (the platform refused these events for good) or 'retry'."""
        body = json.dumps({"job_id": self.job_id, "events": batch}, default=str).encode()
        headers = {"Content-Type": "application/json"}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        timeout = self.request_timeout
        if self._closing.is_set():
            timeout = max(0.1, min(timeout, self._deadline - time.monotonic()))
        # The scheme is checked to be http(s) when the config is loaded.
        request = urllib.request.Request(self.url, data=body, headers=headers, method="POST")  # noqa: S310
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310
                response.read()
            return "ok"
        except urllib.error.HTTPError as exc:
            if exc.code in (408, 425, 429) or exc.code >= 500:
                log.debug("events: platform answered %s, will retry", exc.code)
                return "retry"
            log.warning("events: platform refused %d events (%s)", len(batch), exc.code)
            return "drop"
        except (urllib.error.URLError, OSError, TimeoutError) as exc:
            log.debug("events: platform unreachable (%s), will retry", exc)
            return "retry"


class LogTail(logging.Handler):
    """Keeps the last lines logged, for the `error` event."""

    def __init__(self, lines: int = 50) -> None:
        super().__init__()
        self.lines: collections.deque[str] = collections.deque(maxlen=lines)
        self.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.lines.append(self.format(record))
        except Exception:  # a log line must never break training
            self.handleError(record)

    def text(self) -> list[str]:
        return list(self.lines)
