"""What the job pages show, read from a job and its history (no writes).

The curated view (seed 000) is built from an allow-list of run-config fields: the pod's
environment, command, image, tokens, URLs and paths never reach a page.
"""

from dataclasses import dataclass

from django.db.models import Sum

from ecolink.finetune.models import Job, JobEvent, JobMetric
from ecolink.finetune.templatetags.finetune import method_label

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
    hint = max(1, int(run_config.get("micro_batch_size") or 1))
    micro = max(d for d in range(1, min(hint, per_rank) + 1) if per_rank % d == 0)
    return BatchShape(micro=micro, accumulation=per_rank // micro, world_size=world, realised=False)


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
