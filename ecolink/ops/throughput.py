"""Observed throughput: the efficiency finished jobs actually reached, so that an operator
can bring the estimator's `ThroughputEfficiency` in line with reality.

For each finished job, the estimator is run again on the job's own inputs; its compute
phases (training and evaluation FLOPs) are set against the wall time the job's pod runs
were billed for, less the fixed phases of each run. The efficiency that would have made
the estimator's smooth-run time equal the observed time is the observed efficiency.
"""

from collections import defaultdict
from dataclasses import dataclass, field

from django.db.models import Prefetch

from ecolink.billing.models import BillingSession
from ecolink.catalog.models import GpuType
from ecolink.finetune.models import Job
from ecolink.finetune.planning import estimator, planner
from ecolink.finetune.planning.quote import (
    dataset_tokens,
    efficiency_for,
    estimator_overheads,
    model_arch,
)

S = Job.Status
# Jobs looked at per GPU type and method: the most recent ones.
RECENT_JOBS = 50


def estimate_input(job: Job, efficiency: float) -> estimator.EstimateInput:
    """What the estimator was asked for this job, priced with today's catalog rows."""
    hp = job.hyperparameters
    weights = planner.weight_bytes(model_arch(job.base_model), job.method)
    _, train_tokens, eval_tokens = dataset_tokens(job.dataset, hp["max_seq_length"])
    gpu = job.gpu_type
    return estimator.EstimateInput(
        parameter_count=job.base_model.parameter_count,
        weights_bytes=weights,
        train_tokens=train_tokens,
        eval_tokens=eval_tokens,
        epochs=hp["epochs"],
        method=job.method,
        gpu_count=job.gpu_count,
        peak_tflops=gpu.peak_bf16_tflops,
        efficiency=efficiency,
        hourly_rate_micros=gpu.hourly_rate_micros,
        overheads=estimator_overheads(gpu),
    )


@dataclass(frozen=True)
class Observation:
    job: Job
    runs: int
    wall_seconds: float
    compute_seconds: float  # wall time less the fixed phases of every run
    compute_flops: float  # what the estimator counts for training and evaluation
    flops_capacity: float  # peak FLOP/s × devices × DDP scaling
    bill_micros: int

    @property
    def efficiency(self) -> float:
        return self.compute_flops / (self.compute_seconds * self.flops_capacity)

    @property
    def tokens_per_second(self) -> float:
        return self.job.trained_tokens / self.compute_seconds


def observe(job: Job) -> Observation | None:
    """The job's observed efficiency, or None when its runs say nothing about compute
    (no ended session, or pod runs no longer than their fixed phases)."""
    sessions = [s for s in job.sessions.all() if s.ended_at is not None]
    if not sessions:
        return None
    wall = sum((s.ended_at - s.started_at).total_seconds() for s in sessions if s.ended_at)
    data = estimate_input(job, efficiency=1.0)
    phases = estimator.estimate_cost(data).phases
    # Every pod run pulls, loads and prepares; the job evaluates and registers once.
    per_run = phases["image_pull"] + phases["model_load"] + phases["dataset_prep"]
    once = data.overheads.evaluation_seconds + phases["register"]
    compute = wall - per_run * len(sessions) - once
    if compute <= 0:
        return None
    capacity = estimator.throughput_flops(data)  # at efficiency 1: the hardware's peak
    flops = (
        estimator.FLOPS_PER_PARAM_TOKEN[job.method]
        * data.parameter_count
        * data.train_tokens
        * data.epochs
        + estimator.EVAL_FLOPS_PER_PARAM_TOKEN
        * data.parameter_count
        * data.eval_tokens
        * (data.epochs + 1)
    )
    return Observation(
        job=job,
        runs=len(sessions),
        wall_seconds=wall,
        compute_seconds=compute,
        compute_flops=flops,
        flops_capacity=capacity,
        bill_micros=sum(s.charged_micros for s in sessions),
    )


@dataclass
class Group:
    """The observations for one GPU type and method, and per base model inside it."""

    gpu_type: GpuType
    method: str
    current: float
    observations: list[Observation] = field(default_factory=list)

    @staticmethod
    def _pooled(observations: list[Observation]) -> float | None:
        # Time-weighted: a long run says more about throughput than a short one.
        seconds = sum(o.compute_seconds * o.flops_capacity for o in observations)
        return sum(o.compute_flops for o in observations) / seconds if seconds else None

    @property
    def observed(self) -> float | None:
        return self._pooled(self.observations)

    @property
    def by_base_model(self) -> list[tuple[str, int, float | None, float]]:
        """(base model, jobs, observed efficiency, tokens/s) per base model."""
        models: dict[str, list[Observation]] = defaultdict(list)
        for o in self.observations:
            models[o.job.base_model.display_name].append(o)
        return [
            (
                name,
                len(obs),
                self._pooled(obs),
                sum(o.job.trained_tokens for o in obs) / sum(o.compute_seconds for o in obs),
            )
            for name, obs in sorted(models.items())
        ]


def finished_jobs(gpu_type_id: int | None = None, method: str | None = None):
    jobs = Job.objects.filter(status=S.REGISTERED).select_related(
        "gpu_type", "base_model", "dataset"
    )
    if gpu_type_id is not None:
        jobs = jobs.filter(gpu_type_id=gpu_type_id, method=method)
    return jobs.prefetch_related(
        Prefetch("sessions", queryset=BillingSession.objects.order_by("run"))
    ).order_by("-finished_at")


def observed_groups() -> list[Group]:
    groups: dict[tuple[int, str], Group] = {}
    for job in finished_jobs()[: RECENT_JOBS * 20]:
        key = (job.gpu_type_id, job.method)
        if key not in groups:
            groups[key] = Group(job.gpu_type, job.method, efficiency_for(job.gpu_type, job.method))
        group = groups[key]
        if len(group.observations) < RECENT_JOBS and (o := observe(job)) is not None:
            group.observations.append(o)
    return [g for g in groups.values() if g.observations]


def observed_group(gpu_type: GpuType, method: str) -> Group:
    group = Group(gpu_type, method, efficiency_for(gpu_type, method))
    for job in finished_jobs(gpu_type.pk, method)[:RECENT_JOBS]:
        if (o := observe(job)) is not None:
            group.observations.append(o)
    return group


@dataclass(frozen=True)
class Effect:
    observation: Observation
    now: estimator.Estimate
    proposed: estimator.Estimate

    @property
    def inside_now(self) -> bool:
        return self.now.low_micros <= self.observation.bill_micros <= self.now.high_micros

    @property
    def inside_proposed(self) -> bool:
        return self.proposed.low_micros <= self.observation.bill_micros <= self.proposed.high_micros


def effects(group: Group, proposed: float) -> list[Effect]:
    """Each observed job estimated again with the current and the proposed efficiency."""
    return [
        Effect(
            observation=o,
            now=estimator.estimate_cost(estimate_input(o.job, group.current)),
            proposed=estimator.estimate_cost(estimate_input(o.job, proposed)),
        )
        for o in group.observations
    ]
