"""From an API job request (OpenAI's body plus EcoLink's options) to the wizard's values,
and through the same services the wizard's Approve & Train calls."""

import math

from django.conf import settings
from django.db import transaction

from ecolink.api.errors import ApiError, refusal_error
from ecolink.api.models import ApiJobRequest, ApiKey
from ecolink.api.objects import FILE, parse_id
from ecolink.api.schemas import JobCreate
from ecolink.catalog.models import BaseModel, GpuType, Region, RegionCapacity
from ecolink.datasets.models import Dataset
from ecolink.finetune.actions import job_create
from ecolink.finetune.capacity import region_capacity
from ecolink.finetune.drafts import job_request_quote
from ecolink.finetune.hyperparams import RANGES, default_hyperparameters
from ecolink.finetune.models import Job
from ecolink.finetune.outcomes import ApprovalRefused
from ecolink.finetune.planning.quote import Quote, make_plan
from ecolink.registry.models import RegisteredAdapter
from worker.trainer.microbatch import MicroBatching

BASE_LEARNING_RATE = RANGES["learning_rate"].default
# The API's name for each wizard field, for error messages and `param`.
API_FIELD = {
    "epochs": "hyperparameters.n_epochs",
    "learning_rate": "hyperparameters.learning_rate_multiplier",
    "micro_batch_size": "hyperparameters.batch_size",
    "gradient_accumulation": "hyperparameters.batch_size",
    "dpo_beta": "hyperparameters.beta",
    "max_seq_length": "hyperparameters.max_seq_length",
    "warmup_steps": "hyperparameters.warmup_steps",
    "weight_decay": "hyperparameters.weight_decay",
    "save_steps": "hyperparameters.save_steps",
    "seed": "seed",
    "lora_r": "lora.r",
    "lora_alpha": "lora.alpha",
    "lora_dropout": "lora.dropout",
    "target_modules": "lora.target_modules",
    "method": "training_method",
    "objective": "method.type",
    "dataset": "training_file",
    "base_model": "model",
    "gpu_type": "gpu_type",
    "region": "region",
}


def ready_file(organization, file_id: str, param: str) -> Dataset:
    """The organization's dataset behind a file id, refused unless it is ready to train."""
    pk = parse_id(FILE, file_id, "file", param)
    dataset = Dataset.objects.filter(organization=organization, pk=pk).first()
    if dataset is None:
        raise ApiError(404, f"No file found with id {file_id!r}.", code="not_found", param=param)
    if dataset.status in (Dataset.Status.UPLOADED, Dataset.Status.VALIDATING):
        raise ApiError(
            400,
            f"File {file_id} is still being validated: wait until its status is "
            "`processed`, then create the job.",
            code="file_not_ready",
            param=param,
        )
    if dataset.status == Dataset.Status.INVALID:
        raise ApiError(
            400,
            f"File {file_id} failed validation and can't be trained on: {dataset.error}",
            code="invalid_file",
            param=param,
        )
    return dataset


def base_model_for(organization, model: str) -> BaseModel:
    base = BaseModel.objects.filter(hf_id=model).first()
    if base is not None:
        return base
    if RegisteredAdapter.objects.filter(organization=organization, model_id=model).exists():
        raise ApiError(
            400,
            "Fine-tuning a fine-tuned model is not supported yet: name its base model.",
            code="unsupported_model",
            param="model",
        )
    raise ApiError(
        404, f"The model {model!r} does not exist.", code="model_not_found", param="model"
    )


def _split_batch(batch_size: int, gpu_count: int) -> tuple[int, int]:
    """(micro-batch, gradient accumulation) giving `batch_size` examples per step."""
    if batch_size < 1 or batch_size % gpu_count:
        raise ApiError(
            400,
            f"batch_size must be a positive multiple of gpu_count ({gpu_count}).",
            param="hyperparameters.batch_size",
        )
    # The trainer's own split, with the wizard's largest micro-batch as the hint: the
    # planner lowers it later to what fits the GPU, keeping the effective batch.
    split = MicroBatching.plan(batch_size // gpu_count, int(RANGES["micro_batch_size"].high))
    return split.micro, split.accum


def _hyperparameters(body: JobCreate, base: BaseModel, dataset: Dataset, gpu_count: int) -> dict:
    """The wizard's hyperparameter values for the request."""
    hp = default_hyperparameters(context_length=base.context_length)
    given = {}
    if body.hyperparameters:
        given.update(body.hyperparameters.model_dump(exclude_none=True))
    method = body.method
    if method is not None:
        if method.type == "reinforcement":
            raise ApiError(400, "Reinforcement fine-tuning is not supported.", param="method.type")
        chosen = getattr(method, method.type)
        if chosen and chosen.hyperparameters:
            given.update(chosen.hyperparameters.model_dump(exclude_none=True))
        hp["objective"] = "dpo" if method.type == "dpo" else "sft"
    elif dataset.is_preference:
        hp["objective"] = "dpo"
    renames = {"n_epochs": "epochs", "beta": "dpo_beta"}
    for name, value in given.items():
        if value == "auto" or name in ("batch_size", "learning_rate_multiplier"):
            continue
        hp[renames.get(name, name)] = value
    if isinstance(given.get("batch_size"), int):
        hp["micro_batch_size"], hp["gradient_accumulation"] = _split_batch(
            given["batch_size"], gpu_count
        )
    multiplier = given.get("learning_rate_multiplier")
    if isinstance(multiplier, int | float) and "learning_rate" not in given:
        hp["learning_rate"] = multiplier * BASE_LEARNING_RATE
    if body.seed is not None:
        hp["seed"] = body.seed
    if body.lora:
        lora = body.lora.model_dump(exclude_none=True)
        for name in ("r", "alpha", "dropout"):
            if name in lora:
                hp[f"lora_{name}"] = lora[name]
        if "target_modules" in lora:
            hp["target_modules"] = lora["target_modules"]
    if body.training_method:
        hp["method"] = body.training_method
    for name, value in hp.items():
        if isinstance(value, float) and not math.isfinite(value):
            raise ApiError(400, f"{name} must be a finite number.", param=API_FIELD.get(name))
    return hp


def _pick_hardware(body: JobCreate, base: BaseModel, hp: dict, gpu_count: int):
    """The requested GPU type and region, or the cheapest that fits and is free now."""
    if body.gpu_type is not None:
        gpu = GpuType.objects.filter(slug=body.gpu_type).first()
        if gpu is None:
            raise ApiError(400, f"Unknown gpu_type {body.gpu_type!r}.", param="gpu_type")
        gpus = [gpu]
    else:
        gpus = list(GpuType.objects.order_by("hourly_rate_micros", "pk"))
        fitting = [g for g in gpus if make_plan(base, g, hp, gpu_count).fits]
        gpus = fitting or gpus
    wanted_region = None
    if body.region is not None:
        wanted_region = Region.objects.filter(slug=body.region).first()
        if wanted_region is None:
            raise ApiError(400, f"Unknown region {body.region!r}.", param="region")
    fallback = None
    for gpu in gpus:
        pools = RegionCapacity.objects.filter(gpu_type=gpu).select_related("region")
        if wanted_region is not None:
            pools = pools.filter(region=wanted_region)
        for pool in pools.order_by("region__slug"):
            fallback = fallback or (gpu, pool.region)
            capacity = region_capacity(
                region_id=pool.region_id, gpu_type_id=gpu.pk, requested=gpu_count
            )
            if capacity.available:
                return gpu, pool.region
    if fallback:
        return fallback  # the capacity gate explains why it can't start
    if wanted_region is not None and body.gpu_type is not None:
        raise ApiError(
            400, f"{wanted_region.display_name} has no {gpus[0].display_name}.", param="region"
        )
    raise ApiError(400, "No region offers that GPU type.", param="gpu_type")


def job_values(organization, body: JobCreate) -> tuple[dict, str | None, Dataset | None]:
    """The wizard draft values for an API request, and its validation set."""
    base = base_model_for(organization, body.model)
    dataset = ready_file(organization, body.training_file, "training_file")
    validation = (
        ready_file(organization, body.validation_file, "validation_file")
        if body.validation_file
        else None
    )
    gpu_count = body.gpu_count if body.gpu_count is not None else 1
    if not 1 <= gpu_count <= settings.MAX_GPUS_PER_JOB:
        raise ApiError(
            400,
            f"gpu_count must be between 1 and {settings.MAX_GPUS_PER_JOB}.",
            param="gpu_count",
        )
    hp = _hyperparameters(body, base, dataset, gpu_count)
    gpu, region = _pick_hardware(body, base, hp, gpu_count)
    values = {
        "dataset": dataset.pk,
        "base_model": base.pk,
        "gpu_type": gpu.pk,
        "gpu_count": gpu_count,
        "region": region.pk,
        "hyperparameters": hp,
    }
    return values, validation


def refusal(refused: ApprovalRefused) -> ApiError:
    return refusal_error(refused, param=API_FIELD.get(refused.param or "", refused.param))


def api_quote(organization, body: JobCreate) -> Quote:
    """The wizard's quote for an API request, gates not applied (estimate-cost)."""
    values, _ = job_values(organization, body)
    try:
        return job_request_quote(
            organization=organization,
            values=values,
            datasets=Dataset.objects.filter(organization=organization),
        )
    except ApprovalRefused as refused:
        raise refusal(refused) from refused


@transaction.atomic
def api_job_submit(*, api_key: ApiKey, body: JobCreate) -> Job:
    """Create a job from an API request through the wizard's services."""
    organization = api_key.organization
    values, validation = job_values(organization, body)
    try:
        quote = job_request_quote(
            organization=organization,
            values=values,
            datasets=Dataset.objects.filter(organization=organization),
        )
        name = body.name or f"{quote.base_model.display_name} on {quote.dataset.name}"
        if body.suffix:
            name = f"{name} ({body.suffix})"
        job = job_create(
            organization=organization,
            user=api_key.created_by,
            quote=quote,
            name=name,
            validation_dataset=validation,
        )
    except ApprovalRefused as refused:
        raise refusal(refused) from refused
    method = body.method.model_dump(exclude_none=True) if body.method else {}
    ApiJobRequest.objects.create(
        job=job,
        api_key=api_key,
        suffix=body.suffix or "",
        metadata=body.metadata or {},
        seed=body.seed,
        validation_dataset=validation,
        method=method,
    )
    return job
