"""A job's logs by source, for the Logs tab.

- **build:** preparing a run: approval, resumption, the run config, and the trainer's
  data preparation and model loading phases;
- **deployment:** the pod: launches, stop requests, how each run ended;
- **training:** what the trainer printed, run by run (its log file beside the artifacts,
  or the pod backend's log for a remote pod).

Every line has a level, so the tab can filter by it. Lines are returned as they were
written by EcoLink's own code or the trainer; the trainer never sees a secret.
"""

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from ecolink.finetune.control import pod_backend
from ecolink.finetune.lifecycle import POD_STATUSES
from ecolink.finetune.models import Job, JobEvent
from ecolink.finetune.runconfig import job_artifacts_dir

SOURCES = ("build", "deployment", "training")
LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
MAX_LINES = 500
# The trainer's logging format: "<date> <time> [rank N] LEVEL logger: message".
TRAINER_LINE = re.compile(
    r"^(?P<time>\d{4}-\d\d-\d\d \d\d:\d\d:\d\d)(?:,\d+)? (?:\[rank \d+\] )?"
    r"(?P<level>DEBUG|INFO|WARNING|ERROR|CRITICAL) "
)
BUILD_PHASES = ("preparing_data", "loading_model")


@dataclass(frozen=True)
class LogLine:
    time: datetime | None
    level: str
    source: str
    message: str


def _event_line(event: JobEvent) -> LogLine | None:
    data = event.data or {}
    status = data.get("status")
    if event.kind == "phase":
        if data.get("phase") not in BUILD_PHASES:
            return None
        return LogLine(event.created_at, "INFO", "build", event.message)
    if event.kind == "error":
        return LogLine(event.created_at, "ERROR", "deployment", event.message)
    if event.kind != "status":
        return None
    if status == Job.Status.QUEUED:
        return LogLine(event.created_at, "INFO", "build", event.message)
    level = {
        Job.Status.FAILED: "ERROR",
        Job.Status.PAUSING: "WARNING",
        Job.Status.CANCELLING: "WARNING",
    }.get(status, "INFO")
    return LogLine(event.created_at, level, "deployment", event.message)


def _with_levels(raw_lines: Iterable[str]) -> list[LogLine]:
    """Trainer output as log lines; a continuation line (a traceback) keeps the level of
    the line above it. Each line carries its own timestamp."""
    lines, level = [], "INFO"
    for raw in raw_lines:
        raw = raw.rstrip("\n")
        match = TRAINER_LINE.match(raw)
        if match:
            level = "ERROR" if match["level"] == "CRITICAL" else match["level"]
        if raw.strip():
            lines.append(LogLine(None, level, "training", raw))
    return lines


def _pod_log(job: Job) -> list[str]:
    """A running pod's log from its backend (a remote pod leaves no file here)."""
    if not job.pod_name or job.status not in POD_STATUSES:
        return []
    try:
        return pod_backend().logs(job.pod_name, tail=MAX_LINES)
    except Exception:  # a cluster hiccup must not break the page
        return []


def _trainer_lines(job: Job) -> list[LogLine]:
    """Every run's log file beside the artifacts; else the running pod's log; else the
    tail saved when the job failed (artifacts gone with retention, or a remote pod)."""
    folder = job_artifacts_dir(job.pk) / "logs"
    files = sorted(folder.glob("run-*.log"), key=lambda p: int(p.stem.split("-")[-1]))
    lines: list[LogLine] = []
    for path in files:
        with open(path, errors="replace") as handle:
            lines += _with_levels(handle)
    if not lines:
        lines = _with_levels(_pod_log(job))
    if not lines and job.log_tail:
        lines = [LogLine(None, "ERROR", "training", line) for line in job.log_tail.splitlines()]
    return lines


def job_logs(job: Job, *, source: str, min_level: str = "DEBUG") -> list[LogLine]:
    """The last MAX_LINES lines of one source at `min_level` or above."""
    if source not in SOURCES:
        raise ValueError(f"unknown log source {source!r}")
    threshold = LEVELS.index(min_level) if min_level in LEVELS else 0
    if source == "training":
        lines = _trainer_lines(job)
    else:
        events = JobEvent.objects.filter(job=job, kind__in=("status", "phase", "error")).order_by(
            "id"
        )
        lines = [
            line
            for line in (_event_line(event) for event in events.iterator())
            if line and line.source == source
        ]
    return [line for line in lines if LEVELS.index(line.level) >= threshold][-MAX_LINES:]
