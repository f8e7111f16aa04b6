"""The objects the API answers with, in the OpenAI SDK's shapes: ids with their prefixes,
statuses mapped onto OpenAI's enum, times as Unix seconds. EcoLink's own facts ride along
in extra fields (the SDK keeps unknown fields)."""

from datetime import datetime, timedelta

from django.core.exceptions import ObjectDoesNotExist
from django.db.models import QuerySet
from django.utils import timezone

from ecolink.api.errors import ApiError, refusal_error
from ecolink.datasets.models import Dataset
from ecolink.finetune.actions import model_id_for
from ecolink.finetune.hyperparams import RANGES
from ecolink.finetune.lifecycle import TERMINAL_STATUSES
from ecolink.finetune.models import Job, JobEvent
from ecolink.finetune.outcomes import ActionRefused

S = Job.Status
FILE, JOB, EVENT, CHECKPOINT = "file-", "ftjob-", "ftevent-", "ftckpt-"
# OpenAI's job statuses: validating_files, queued, running, succeeded, failed, cancelled
# (and paused). The native status is kept in `native_status`.
OPENAI_STATUS = {
    S.QUEUED: "queued",
    S.STARTING: "running",
    S.TRAINING: "running",
    S.EVALUATING: "running",
    S.TRAINED_PENDING_REGISTER: "running",
    S.PAUSING: "running",
    S.REGISTERED: "succeeded",
    S.PAUSED: "paused",
    S.CANCELLING: "cancelled",
    S.CANCELLED: "cancelled",
    S.FAILED: "failed",
}
FILE_STATUS = {
    Dataset.Status.UPLOADED: "uploaded",
    Dataset.Status.VALIDATING: "uploaded",
    Dataset.Status.READY: "processed",
    Dataset.Status.INVALID: "error",
}
BASE_LEARNING_RATE = RANGES["learning_rate"].default
JOB_RELATED = ("base_model", "dataset", "gpu_type", "region", "organization", "api_request")


def unix(moment: datetime | None) -> int | None:
    return int(moment.timestamp()) if moment else None


def parse_id(prefix: str, value: str, what: str, param: str | None = None) -> int:
    """The primary key inside an API id; a malformed id is simply not found."""
    digits = value[len(prefix) :] if value.startswith(prefix) else ""
    if not digits.isdigit() or len(digits) > 18:
        raise ApiError(404, f"No {what} found with id {value!r}.", code="not_found", param=param)
    return int(digits)


def cursor_page(qs: QuerySet, *, after: int | None, limit: int, present, ascending=False) -> dict:
    """One page of an OpenAI list: `after` is the last id the caller saw."""
    if after is not None:
        qs = qs.filter(pk__gt=after) if ascending else qs.filter(pk__lt=after)
    rows = list(qs.order_by("pk" if ascending else "-pk")[: limit + 1])
    data = [present(row) for row in rows[:limit]]
    return {
        "object": "list",
        "data": data,
        "has_more": len(rows) > limit,
        "first_id": data[0]["id"] if data else None,
        "last_id": data[-1]["id"] if data else None,
    }


def file_object(dataset: Dataset) -> dict:
    return {
        "id": f"{FILE}{dataset.pk}",
        "object": "file",
        "bytes": dataset.size_bytes,
        "created_at": unix(dataset.created_at),
        "filename": dataset.original_filename,
        "purpose": "fine-tune",
        "status": FILE_STATUS[dataset.status],
        "status_details": dataset.error or None,
        "expires_at": None,
        # EcoLink: the dataset behind the file.
        "native_status": dataset.status,
        "format": dataset.format,
        "example_count": dataset.example_count,
        "token_count": dataset.token_count,
        "is_preference": dataset.is_preference,
    }


def fine_tuned_model(job: Job) -> str | None:
    try:
        return job.adapter.model_id
    except ObjectDoesNotExist:
        return None


def _api_request(job: Job):
    try:
        return job.api_request
    except ObjectDoesNotExist:
        return None


def job_hyperparameters(job: Job) -> dict:
    hp = job.hyperparameters
    batch = hp.get("micro_batch_size", 1) * hp.get("gradient_accumulation", 1) * job.gpu_count
    values = {
        "n_epochs": hp.get("epochs"),
        "batch_size": batch,
        "learning_rate_multiplier": round(hp.get("learning_rate", 0) / BASE_LEARNING_RATE, 6),
    }
    if job.objective == Job.Objective.DPO:
        values["beta"] = hp.get("dpo_beta")
    return values


def estimated_finish(job: Job) -> int | None:
    if job.status in TERMINAL_STATUSES or job.status == S.PAUSED:
        return None
    start = job.started_at or timezone.now()
    return unix(start + timedelta(seconds=job.estimate_seconds_high))


def job_object(job: Job, *, native: bool = False) -> dict:
    """A fine_tuning.job; `native` puts EcoLink's status in `status` (the native API)."""
    request = _api_request(job)
    hp = job.hyperparameters
    hyperparameters = job_hyperparameters(job)
    method_type = "dpo" if job.objective == Job.Objective.DPO else "supervised"
    error = None
    if job.status == S.FAILED:
        error = {
            "code": job.error_class or "failed",
            "message": job.status_reason or "The job failed.",
            "param": None,
        }
    validation = request.validation_dataset_id if request else None
    return {
        "id": f"{JOB}{job.pk}",
        "object": "fine_tuning.job",
        "created_at": unix(job.created_at),
        "error": error,
        "fine_tuned_model": fine_tuned_model(job) if job.status == S.REGISTERED else None,
        "finished_at": unix(job.finished_at) if job.status in TERMINAL_STATUSES else None,
        "hyperparameters": hyperparameters,
        "model": job.base_model.hf_id,
        "organization_id": job.organization.slug,
        "result_files": [],
        "seed": hp.get("seed"),
        "status": job.status if native else OPENAI_STATUS[job.status],
        "trained_tokens": job.trained_tokens,
        "training_file": f"{FILE}{job.dataset_id}",
        "validation_file": f"{FILE}{validation}" if validation else None,
        "estimated_finish": estimated_finish(job),
        "integrations": [],
        "metadata": request.metadata if request and request.metadata else None,
        "method": {"type": method_type, method_type: {"hyperparameters": hyperparameters}},
        "user_provided_suffix": (request.suffix or None) if request else None,
        # EcoLink's own fields.
        "name": job.name,
        "native_status": job.status,
        "status_reason": job.status_reason,
        "pause_reason": job.pause_reason or None,
        "training_method": job.method,
        "requested_training_method": job.requested_method,
        "gpu_type": job.gpu_type.slug,
        "gpu_count": job.gpu_count,
        "region": job.region.slug,
        "lora": {
            "r": hp.get("lora_r"),
            "alpha": hp.get("lora_alpha"),
            "dropout": hp.get("lora_dropout"),
            "target_modules": hp.get("target_modules", []),
        },
        "plan_summary": job.plan_summary,
        "current_step": job.current_step,
        "total_steps": job.total_steps,
        "checkpoint_step": job.checkpoint_step,
        "estimated_cost_micros": {
            "low": job.estimate_low_micros,
            "high": job.estimate_high_micros,
        },
    }


def jobs_for(organization) -> QuerySet[Job]:
    return Job.objects.filter(organization=organization).select_related(*JOB_RELATED, "adapter")


def get_job(organization, job_id: str) -> Job:
    pk = parse_id(JOB, job_id, "fine-tuning job", "fine_tuning_job_id")
    job = jobs_for(organization).filter(pk=pk).first()
    if job is None:
        raise ApiError(
            404, f"No fine-tuning job found with id {job_id!r}.", code="not_found", param="id"
        )
    return job


def job_act(organization, job_id: str, action, *, native: bool = False) -> dict:
    """Run a job action on the caller's job and answer with the job as it now is: done and
    already there are both a success; a refusal is the error its code maps to. Every API
    surface goes through here, so they all answer a duplicate click the same way."""
    job = get_job(organization, job_id)
    try:
        action(job.pk)
    except ActionRefused as refused:
        raise refusal_error(refused) from refused
    return job_object(get_job(organization, job_id), native=native)


def _event_level(event: JobEvent) -> str:
    if event.kind == "error" or event.data.get("status") == S.FAILED:
        return "error"
    if event.data.get("status") in (S.PAUSING, S.CANCELLING):
        return "warn"
    return "info"


def event_object(event: JobEvent) -> dict:
    data = dict(event.data or {})
    is_metrics = event.kind in ("metrics", "eval")
    if event.kind == "metrics" and "loss" in data:
        data["train_loss"] = data["loss"]
    if event.kind == "eval" and "eval_loss" in data:
        data["valid_loss"] = data["eval_loss"]
    return {
        "id": f"{EVENT}{event.pk}",
        "object": "fine_tuning.job.event",
        "created_at": unix(event.created_at),
        "level": _event_level(event),
        "message": event.message or event.kind,
        "data": data,
        "type": "metrics" if is_metrics else "message",
        "kind": event.kind,
    }


def checkpoint_object(event: JobEvent, job: Job, losses: dict) -> dict:
    step = event.data.get("step")
    step = step if isinstance(step, int) and not isinstance(step, bool) else 0
    metrics = {"step": step, **losses.get(step, {})}
    return {
        "id": f"{CHECKPOINT}{event.pk}",
        "object": "fine_tuning.job.checkpoint",
        "created_at": unix(event.created_at),
        "fine_tuned_model_checkpoint": f"{model_id_for(job)}:ckpt-step-{step}",
        "fine_tuning_job_id": f"{JOB}{job.pk}",
        "metrics": metrics,
        "step_number": step,
    }
