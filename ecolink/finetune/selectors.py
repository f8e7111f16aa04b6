"""What the job pages show, read from a job and its history (no writes): the curated
settings, progress, cost, chart points and the Logs tab's lines.

The curated view (seed 000) is built from an allow-list of run-config fields: the pod's
environment, command, image, tokens, URLs and paths never reach a page.

Logs come by source:
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

from django.db.models import Sum

from ecolink.finetune.labels import method_label
from ecolink.finetune.lifecycle import POD_STATUSES
from ecolink.finetune.models import Job, JobEvent, JobMetric
from ecolink.finetune.pods import pod_backend
from ecolink.finetune.runconfig import job_artifacts_dir
from worker.trainer.microbatch import MicroBatching

S = Job.Status


@dataclass(frozen=True)
class BatchShape:
    micro: int
    accumulation: int
    world_size: int
    realised: bool  # reported by the trainer, not planned from the config

    @property
    def effective(self) -> int:
        return self.micro * self.accumulation * self.world_size


def batch_shape(run_config: dict, realised: dict | None = None) -> BatchShape:
    """The micro-batch × accumulation × world size a run uses.

    The trainer reports the shape it really uses (after any out-of-memory back-off) in its
    `training` phase event; before that, it is planned from the config the way the
    trainer plans it: the largest micro-batch up to the hint that divides each rank's
    share of the effective batch.
    """
    if realised and realised.get("micro_batch_size"):
        return BatchShape(
            micro=int(realised["micro_batch_size"]),
            accumulation=int(realised.get("gradient_accumulation_steps") or 1),
            world_size=int(realised.get("world_size") or 1),
            realised=True,
        )
    world = max(1, int(run_config.get("world_size") or 1))
    per_rank = max(1, int(run_config.get("effective_batch_size") or 1) // world)
    split = MicroBatching.plan(per_rank, max(1, int(run_config.get("micro_batch_size") or 1)))
    return BatchShape(micro=split.micro, accumulation=split.accum, world_size=world, realised=False)


def realised_shape(job: Job) -> dict | None:
    """The batch shape the trainer last reported for this job, if it has started."""
    event = (
        JobEvent.objects.filter(job=job, kind="phase", data__has_key="micro_batch_size")
        .order_by("-id")
        .only("data")
        .first()
    )
    return event.data if event else None


def curated_settings(job: Job, shape: BatchShape) -> list[tuple[str, str]]:
    """The job's settings as (label, value), read back from its rendered run config."""
    config = job.run_config or {}
    rows = [
        ("Method", f"{method_label(job.method)} — {job.plan_summary}".rstrip(" —")),
        ("Objective", job.get_objective_display()),
        ("Epochs", str(config.get("epochs", ""))),
        ("Learning rate", f"{config.get('learning_rate', '')}"),
        ("Scheduler", f"{config.get('lr_scheduler', '')}, {config.get('warmup_steps', 0)} warmup"),
        ("Weight decay", str(config.get("weight_decay", ""))),
        ("Micro-batch", str(shape.micro)),
        ("Gradient accumulation", str(shape.accumulation)),
        ("GPUs (world size)", str(shape.world_size)),
        (
            "Effective batch size",
            f"{shape.effective} = {shape.micro} × {shape.accumulation} × {shape.world_size}"
            + ("" if shape.realised else " (planned)"),
        ),
        ("Max sequence length", str(config.get("max_seq_length", ""))),
        ("Save steps", str(config.get("save_steps", ""))),
        ("Seed", str(config.get("seed", ""))),
    ]
    if job.method in ("lora", "qlora"):
        lora = config.get("lora") or {}
        rows.append(
            (
                "LoRA",
                f"r {lora.get('r')}, alpha {lora.get('alpha')}, dropout {lora.get('dropout')}, "
                f"targets {', '.join(lora.get('target_modules') or [])}",
            )
        )
    if job.method == "qlora":
        qlora = config.get("qlora") or {}
        double = " with double quantization" if qlora.get("double_quant") else ""
        rows.append(("Quantization", f"4-bit {str(qlora.get('quant_type', '')).upper()}{double}"))
    if job.objective == "dpo":
        rows.append(("DPO beta", str((config.get("dpo") or {}).get("beta", ""))))
    return rows


def checkpoint_reference(job: Job) -> str:
    """The job's checkpoint as users refer to it: the registered adapter once there is one
    (a failed run's checkpoints are never offered as ready), else the latest resumable
    checkpoint's name and step."""
    if job.status == S.REGISTERED and hasattr(job, "adapter"):
        return f"{job.adapter.model_id} (final adapter, step {job.current_step})"
    if not job.checkpoint_path or job.status == S.FAILED:
        return ""
    name = job.checkpoint_path.rstrip("/").rsplit("/", 1)[-1]
    return f"{name} (step {job.checkpoint_step})"


@dataclass(frozen=True)
class Progress:
    step: int
    total: int
    tokens_per_second: float | None
    eta_seconds: int | None

    @property
    def remaining(self) -> int:
        return max(0, self.total - self.step)

    @property
    def percent(self) -> int:
        return int(100 * self.step / self.total) if self.total else 0


def job_progress(job: Job) -> Progress:
    """Step / total, throughput and an ETA from the latest logged step (one indexed row)."""
    latest = (
        JobMetric.objects.filter(job=job, kind=JobMetric.Kind.TRAIN)
        .order_by("-step")
        .only("tokens_per_second")
        .first()
    )
    tps = latest.tokens_per_second if latest else None
    eta = None
    if tps and job.current_step and job.trained_tokens:
        tokens_per_step = job.trained_tokens / job.current_step
        eta = int(max(0, job.total_steps - job.current_step) * tokens_per_step / tps)
    return Progress(
        step=job.current_step, total=job.total_steps, tokens_per_second=tps, eta_seconds=eta
    )


def job_cost_micros(job: Job) -> int:
    return job.sessions.aggregate(total=Sum("charged_micros"))["total"] or 0


def usual_evaluation_seconds(job: Job) -> int | None:
    """How long this job's earlier evaluations took, from their phase and result events."""
    events = list(
        JobEvent.objects.filter(job=job, kind__in=("phase", "eval"))
        .order_by("-id")
        .only("kind", "data", "created_at")[:20]
    )
    durations, ended_at = [], None
    for event in events:  # newest first: an eval result, then the phase that started it
        if event.kind == "eval":
            ended_at = event.created_at
        elif event.data.get("phase") == "evaluating" and ended_at is not None:
            durations.append((ended_at - event.created_at).total_seconds())
            ended_at = None
    return int(sum(durations) / len(durations)) if durations else None


METRIC_COLUMNS = ("step", "loss", "learning_rate", "tokens_per_second", "memory_bytes")


def metrics_since(job: Job, *, after_train: int = -1, after_eval: int = -1) -> dict:
    """Chart points newer than the ones a page already has, as columns."""
    train = list(
        JobMetric.objects.filter(job=job, kind=JobMetric.Kind.TRAIN, step__gt=after_train)
        .order_by("step")
        .values_list(*METRIC_COLUMNS)[:5000]
    )
    evals = list(
        JobMetric.objects.filter(job=job, kind=JobMetric.Kind.EVAL, step__gt=after_eval)
        .order_by("step")
        .values_list("step", "loss")[:5000]
    )
    return {
        "train": {name: [row[i] for row in train] for i, name in enumerate(METRIC_COLUMNS)},
        "eval": {"step": [row[0] for row in evals], "loss": [row[1] for row in evals]},
    }


# --- Logs ---------------------------------------------------------------------------

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
