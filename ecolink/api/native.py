"""EcoLink's native API under /api/v1/fine-tuning/: what OpenAI's lacks (hardware options,
VRAM requirements, cost estimates) and the job views of seed 002. The answers come from
the planner, estimator and quote the wizard uses. Schema at /api/v1/openapi.json."""

import time

from django.conf import settings
from django.db.models import Count, Sum
from ninja import NinjaAPI, Query, Schema
from pydantic import Field

from ecolink.api.auth import BearerKey
from ecolink.api.errors import ApiError, install_error_handlers
from ecolink.api.jobs import api_quote
from ecolink.api.objects import JOB, cursor_page, get_job, job_act, job_object, jobs_for
from ecolink.api.schemas import ERRORS, HardwareCheck, JobCreate, JobObject, Open, Page
from ecolink.billing.models import BillingSession
from ecolink.catalog.models import BaseModel, GpuType, Region, RegionCapacity
from ecolink.datasets.models import Dataset
from ecolink.finetune import selectors
from ecolink.finetune.actions import job_cancel, job_pause, job_resume
from ecolink.finetune.capacity import region_capacity
from ecolink.finetune.drafts import hardware_check
from ecolink.finetune.hyperparams import RANGES
from ecolink.finetune.models import Job, JobMetric
from ecolink.finetune.planning.planner import GIB, Plan
from ecolink.finetune.planning.quote import gpu_overview
from ecolink.finetune.wizard import eligible_bases
from ecolink.registry.downloads import DEFAULT_EXPIRES_IN, signed_download_url
from ecolink.registry.models import RegisteredAdapter

api = NinjaAPI(
    title="EcoLink native API",
    version="1",
    description="Hardware options, VRAM requirements, cost estimates and job views. "
    "Authenticate with `Authorization: Bearer <API key>`.",
    urls_namespace="native_v1",
    auth=BearerKey(),
)
install_error_handlers(api)

PREFIX = "/fine-tuning"
TRAINING_METHODS = ("auto", "lora", "qlora", "full", "prompt_tuning")


def _range(name: str):
    r = RANGES[name]
    return Field(int(r.default), ge=int(r.low), le=int(r.high), description=r.help)


class RequirementsQuery(Schema):
    training_method: str = Field("auto", pattern="^(auto|lora|qlora|full|prompt_tuning)$")
    gpu_count: int = Field(1, ge=1, le=settings.MAX_GPUS_PER_JOB)
    micro_batch_size: int = _range("micro_batch_size")
    max_seq_length: int = _range("max_seq_length")
    lora_r: int = _range("lora_r")


class JobsQuery(Schema):
    after: str | None = None
    limit: int = Field(20, ge=1, le=100)
    status: str | None = Field(None, description="A native job status.")


class LogsQuery(Schema):
    log_type: str = Field("training", pattern="^(build|deployment|training)$")
    level: str = Field("DEBUG", pattern="^(DEBUG|INFO|WARNING|ERROR)$")


def _usd(micros: int) -> float:
    return round(micros / 1_000_000, 2)


def _base(model: str) -> BaseModel:
    base = eligible_bases().filter(hf_id=model).first()
    if base is None and model.isdigit() and len(model) < 18:
        base = eligible_bases().filter(pk=int(model)).first()
    if base is None:
        raise ApiError(
            404, f"{model!r} is not a base model open for fine-tuning.", code="model_not_found"
        )
    return base


def _shape_hp(method: str, micro_batch_size: int, max_seq_length: int, lora_r: int, modules):
    return {
        # lora/qlora are planned as asked; auto picks between them as the wizard does.
        "method": method,
        "micro_batch_size": micro_batch_size,
        "max_seq_length": max_seq_length,
        "lora_r": lora_r,
        "target_modules": list(modules),
    }


def _plan_object(gpu: GpuType, plan: Plan) -> dict:
    b = plan.breakdown
    return {
        "gpu_type": gpu.slug,
        "display_name": gpu.display_name,
        "fits": plan.fits,
        "training_method": plan.method,
        "vram_required_bytes": b.total,
        "vram_required_gb": round(b.total / GIB, 2),
        "vram_available_gb": gpu.vram_gb,
        "max_micro_batch": plan.max_micro_batch,
        "micro_batch_hint": plan.micro_batch_hint,
        "reason": plan.reason,
        "suggestion": plan.suggestion,
        "breakdown_bytes": {
            "weights": b.weights,
            "adapter": b.adapter,
            "gradients": b.gradients,
            "optimizer": b.optimizer,
            "activations": b.activations,
            "logits": b.logits,
            "ddp_buckets": b.ddp_buckets,
            "cuda_context": b.cuda_context,
            "fragmentation": b.fragmentation,
        },
    }


@api.get(f"{PREFIX}/base-models", response={200: Page, **ERRORS}, tags=["catalog"])
def base_models(request):
    """Base models on the allow-list that can be fine-tuned."""
    data = [
        {
            "id": b.hf_id,
            "display_name": b.display_name,
            "family": b.family,
            "parameter_count": b.parameter_count,
            "context_length": b.context_length,
            "num_layers": b.num_layers,
            "hidden_size": b.hidden_size,
        }
        for b in eligible_bases()
    ]
    return {"object": "list", "data": data, "has_more": False}


@api.get(f"{PREFIX}/hardware-options", response={200: Open, **ERRORS}, tags=["catalog"])
def hardware_options(request):
    """GPU types with their memory and rate, and where they are free now."""
    pools: dict[int, list] = {}
    for pool in RegionCapacity.objects.select_related("region"):
        capacity = region_capacity(
            region_id=pool.region_id, gpu_type_id=pool.gpu_type_id, requested=1
        )
        pools.setdefault(pool.gpu_type_id, []).append(
            {
                "region": pool.region.slug,
                "display_name": pool.region.display_name,
                "total_gpus": capacity.total,
                "in_use": capacity.in_use,
                "free": capacity.free,
            }
        )
    gpus = [
        {
            "gpu_type": g.slug,
            "display_name": g.display_name,
            "vram_gb": g.vram_gb,
            "hourly_rate_micros": g.hourly_rate_micros,
            "hourly_rate_usd": _usd(g.hourly_rate_micros),
            "max_count": g.max_count,
            "is_cpu": g.is_cpu,
            "regions": pools.get(g.pk, []),
        }
        for g in GpuType.objects.all()
    ]
    return {
        "gpu_types": gpus,
        "regions": [
            {"region": r.slug, "display_name": r.display_name} for r in Region.objects.all()
        ],
        "training_methods": list(TRAINING_METHODS),
        "gpu_count": {"min": 1, "max": settings.MAX_GPUS_PER_JOB, "default": 1},
    }


@api.get(
    PREFIX + "/models/{path:model}/requirements", response={200: Open, **ERRORS}, tags=["catalog"]
)
def requirements(request, model: str, query: Query[RequirementsQuery]):
    """The VRAM planner's answer for this model on every GPU type."""
    base = _base(model)
    hp = _shape_hp(
        query.training_method,
        query.micro_batch_size,
        min(query.max_seq_length, base.context_length),
        query.lora_r,
        ("q_proj", "v_proj"),
    )
    plans = gpu_overview(base, hp, query.gpu_count)
    return {
        "model": base.hf_id,
        "parameter_count": base.parameter_count,
        "requested": {**hp, "gpu_count": query.gpu_count},
        "requirements": [_plan_object(g, p) for g, p in plans],
    }


@api.post(f"{PREFIX}/validate-hardware", response={200: Open, **ERRORS}, tags=["catalog"])
def validate_hardware(request, payload: HardwareCheck):
    """Would this model train on this hardware? The wizard's checks, the planner's verdict
    and, with a region, its capacity."""
    base = _base(payload.model)
    gpu = GpuType.objects.filter(slug=payload.gpu_type).first()
    if gpu is None:
        raise ApiError(400, f"Unknown gpu_type {payload.gpu_type!r}.", param="gpu_type")
    region = None
    if payload.region is not None:
        region = Region.objects.filter(slug=payload.region).first()
        if region is None:
            raise ApiError(400, f"Unknown region {payload.region!r}.", param="region")
    hp = _shape_hp(
        payload.training_method,
        payload.micro_batch_size,
        payload.max_seq_length or min(2048, base.context_length),
        payload.lora_r,
        payload.target_modules,
    )
    verdict = hardware_check(
        base_model=base,
        gpu_type=gpu,
        gpu_count=payload.gpu_count,
        region=region,
        hyperparameters=hp,
    )
    answer = {"valid": verdict.valid, "problems": verdict.problems}
    if verdict.plan is not None:
        answer.update(_plan_object(gpu, verdict.plan))
    if verdict.capacity is not None:
        capacity = verdict.capacity
        answer["capacity"] = {
            "region": region.slug,
            "total_gpus": capacity.total,
            "free": capacity.free,
            "available": capacity.available,
            "wait_seconds": capacity.wait_seconds,
        }
    return answer


@api.post(f"{PREFIX}/estimate-cost", response={200: Open, **ERRORS}, tags=["catalog"])
def estimate_cost(request, payload: JobCreate):
    """The wizard's cost range for a job request (the same body as creating one), with
    the gates that would stop it; nothing is created."""
    quote = api_quote(request.organization, payload)
    estimate = quote.estimate
    return {
        "model": quote.base_model.hf_id,
        "training_file": payload.training_file,
        "gpu_type": quote.gpu_type.slug,
        "gpu_count": quote.gpu_count,
        "region": quote.region.slug,
        "training_method": quote.plan.method,
        "total_steps": quote.total_steps,
        "trained_tokens": estimate.trained_tokens,
        "estimated_cost_micros": {"low": estimate.low_micros, "high": estimate.high_micros},
        "estimated_cost_usd": {
            "low": _usd(estimate.low_micros),
            "high": _usd(estimate.high_micros),
        },
        "estimated_seconds": {"low": estimate.low_seconds, "high": estimate.high_seconds},
        "phases_seconds": estimate.phases,
        "minute_micros": estimate.minute_micros,
        "balance_micros": quote.balance_micros,
        "balance_ok": quote.balance_ok,
        "capacity_available": quote.capacity.available,
        "plan": quote.plan.reason,
        "blockers": quote.blockers,
    }


@api.get(f"{PREFIX}/stats", response={200: Open, **ERRORS}, tags=["jobs"])
def stats(request):
    """Counts of this organization's jobs by status, its files, spend and balance."""
    org = request.organization
    by_status = dict(
        Job.objects.filter(organization=org).values_list("status").annotate(n=Count("pk"))
    )
    spent = (
        BillingSession.objects.filter(organization=org).aggregate(s=Sum("charged_micros"))["s"] or 0
    )
    org.refresh_from_db(fields=["balance_micros"])
    return {
        "jobs": {"total": sum(by_status.values()), "by_status": by_status},
        "files": Dataset.objects.filter(organization=org).count(),
        "spent_micros": spent,
        "balance_micros": org.balance_micros,
    }


def _native_job(job: Job) -> dict:
    return job_object(job, native=True)


@api.get(f"{PREFIX}/jobs", response={200: Page, **ERRORS}, tags=["jobs"])
def jobs(request, query: Query[JobsQuery]):
    qs = jobs_for(request.organization)
    if query.status is not None:
        if query.status not in Job.Status.values:
            raise ApiError(400, f"Unknown status {query.status!r}.", param="status")
        qs = qs.filter(status=query.status)
    after = None
    if query.after is not None:
        digits = query.after.removeprefix(JOB)
        if not digits.isdigit() or len(digits) > 18:
            raise ApiError(400, "`after` must be a job id.", param="after")
        after = int(digits)
    return cursor_page(qs, after=after, limit=query.limit, present=_native_job)


@api.get(PREFIX + "/jobs/{job_id}", response={200: JobObject, **ERRORS}, tags=["jobs"])
def job_detail(request, job_id: str):
    return _native_job(get_job(request.organization, job_id))


@api.post(PREFIX + "/jobs/{job_id}/stop", response={200: JobObject, **ERRORS}, tags=["jobs"])
def job_stop(request, job_id: str):
    """Stop for good (cancel): the meter settles, the last adapter is kept 30 days."""
    return job_act(request.organization, job_id, lambda pk: job_cancel(job_id=pk), native=True)


@api.post(PREFIX + "/jobs/{job_id}/pause", response={200: JobObject, **ERRORS}, tags=["jobs"])
def job_pause_view(request, job_id: str):
    """Checkpoint and stop; the meter stops until the job is resumed."""
    return job_act(
        request.organization, job_id, lambda pk: job_pause(job_id=pk, reason="user"), native=True
    )


@api.post(PREFIX + "/jobs/{job_id}/resume", response={200: JobObject, **ERRORS}, tags=["jobs"])
def job_resume_view(request, job_id: str):
    """Continue a paused job from its latest checkpoint, if the balance covers the rest."""
    return job_act(request.organization, job_id, lambda pk: job_resume(job_id=pk), native=True)


@api.get(PREFIX + "/jobs/{job_id}/logs", response={200: Open, **ERRORS}, tags=["jobs"])
def job_logs(request, job_id: str, query: Query[LogsQuery]):
    """The job's log lines by source: build (preparing a run), deployment (the pod),
    training (what the trainer printed)."""
    job = get_job(request.organization, job_id)
    lines = selectors.job_logs(job, source=query.log_type, min_level=query.level)
    return {
        "job_id": f"{JOB}{job.pk}",
        "log_type": query.log_type,
        "lines": [
            {
                "time": line.time.isoformat() if line.time else None,
                "level": line.level,
                "message": line.message,
            }
            for line in lines
        ],
    }


@api.get(PREFIX + "/jobs/{job_id}/metrics", response={200: Open, **ERRORS}, tags=["jobs"])
def job_metrics(request, job_id: str):
    """Training metrics per logged step and evaluation metrics per evaluation."""
    job = get_job(request.organization, job_id)
    train, evals = [], []
    for m in JobMetric.objects.filter(job=job).order_by("kind", "step"):
        if m.kind == JobMetric.Kind.TRAIN:
            train.append(
                {
                    "step": m.step,
                    "train_loss": m.loss,
                    "learning_rate": m.learning_rate,
                    "grad_norm": m.grad_norm,
                    "tokens_per_second": m.tokens_per_second,
                    "samples_per_second": m.samples_per_second,
                    "memory_bytes": m.memory_bytes,
                }
            )
        else:
            evals.append({"step": m.step, "eval_loss": m.loss, "perplexity": m.perplexity})
    return {
        "job_id": f"{JOB}{job.pk}",
        "current_step": job.current_step,
        "total_steps": job.total_steps,
        "train": train,
        "eval": evals,
        "summary": {
            "train_loss": train[-1]["train_loss"] if train else None,
            "eval_loss": evals[-1]["eval_loss"] if evals else None,
            "perplexity": evals[-1]["perplexity"] if evals else None,
        },
    }


@api.get(PREFIX + "/jobs/{job_id}/download", response={200: Open, **ERRORS}, tags=["jobs"])
def job_download(request, job_id: str):
    """A time-limited signed link to a tar.gz of the job's adapter."""
    job = get_job(request.organization, job_id)
    if job.status != Job.Status.REGISTERED:
        raise ApiError(
            409,
            f"A {job.get_status_display().lower()} job has no registered adapter to download.",
            code="invalid_state",
        )
    adapter = RegisteredAdapter.objects.filter(job=job, deleted_at__isnull=True).first()
    if adapter is None:
        raise ApiError(409, "The job's adapter was deleted.", code="invalid_state")
    url = signed_download_url(adapter, expires_in=DEFAULT_EXPIRES_IN, request=request)
    return {
        "job_id": f"{JOB}{job.pk}",
        "model": adapter.model_id,
        "url": url,
        "format": "tar.gz",
        "expires_in": DEFAULT_EXPIRES_IN,
        "expires_at": int(time.time()) + DEFAULT_EXPIRES_IN,
    }
