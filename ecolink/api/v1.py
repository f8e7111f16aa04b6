"""The OpenAI-compatible API under /v1: files, fine-tuning jobs, models.

The official `openai` SDK drives it unchanged (`base_url=<site>/v1`). Every lookup goes
through the key's organization: another organization's id answers 404 like a missing one.
The schema is served at /v1/openapi.json.
"""

from typing import Literal

from django.core.files.storage import default_storage
from django.db.models import ProtectedError
from django.http import FileResponse
from ninja import File, Form, NinjaAPI, Query, Schema
from ninja.files import UploadedFile
from pydantic import Field

from ecolink.api.auth import BearerKey
from ecolink.api.errors import ApiError, install_error_handlers
from ecolink.api.jobs import api_job_submit
from ecolink.api.objects import (
    CHECKPOINT,
    EVENT,
    FILE,
    JOB,
    checkpoint_object,
    cursor_page,
    event_object,
    file_object,
    get_job,
    job_act,
    job_object,
    jobs_for,
    parse_id,
    unix,
)
from ecolink.api.schemas import (
    ERRORS,
    CheckpointPage,
    EventPage,
    FileDeleted,
    FileObject,
    FilePage,
    JobCreate,
    JobObject,
    JobPage,
    ModelObject,
    ModelPage,
)
from ecolink.catalog.models import BaseModel
from ecolink.datasets.models import Dataset
from ecolink.datasets.services import DatasetError, dataset_delete, dataset_upload
from ecolink.finetune.actions import job_cancel, job_pause, job_resume
from ecolink.finetune.models import Job, JobEvent, JobMetric
from ecolink.finetune.wizard import eligible_bases
from ecolink.registry.models import RegisteredAdapter

api = NinjaAPI(
    title="EcoLink OpenAI-compatible API",
    version="1",
    description="Files, fine-tuning jobs and models, shaped as the OpenAI API. "
    "Authenticate with `Authorization: Bearer <API key>`.",
    urls_namespace="openai_v1",
    auth=BearerKey(),
)
install_error_handlers(api)

S = Job.Status
# Base models are catalog rows without a creation time of their own.
CATALOG_EPOCH = 1_700_000_000


class PageQuery(Schema):
    after: str | None = Field(None, description="The last id of the previous page.")
    limit: int = Field(20, ge=1, le=100)


class FilePageQuery(PageQuery):
    order: str = Field("desc", pattern="^(asc|desc)$")
    purpose: str | None = None


def _after(prefix: str, after: str | None, what: str) -> int | None:
    if after is None:
        return None
    digits = after[len(prefix) :] if after.startswith(prefix) else ""
    if not digits.isdigit() or len(digits) > 18:
        raise ApiError(400, f"`after` must be a {what} id.", param="after")
    return int(digits)


# --- files --------------------------------------------------------------------------


def _dataset(request, file_id: str) -> Dataset:
    pk = parse_id(FILE, file_id, "file", "file_id")
    dataset = Dataset.objects.filter(organization=request.organization, pk=pk).first()
    if dataset is None:
        raise ApiError(404, f"No file found with id {file_id!r}.", code="not_found", param="id")
    return dataset


@api.post("/files", response={200: FileObject, **ERRORS}, tags=["files"])
def file_create(request, file: File[UploadedFile], purpose: Form[Literal["fine-tune"]]):
    """Upload a training file (JSONL, CSV or Parquet); it is validated like a dataset
    uploaded in the browser. Poll it until `status` is `processed` (or `error`)."""
    try:
        dataset = dataset_upload(
            organization_id=request.organization.pk,
            file=file,
            filename=file.name or "upload.jsonl",
            uploaded_by_id=request.api_key.created_by_id,
        )
    except DatasetError as refused:
        raise ApiError(400, str(refused), param="file") from refused
    return file_object(dataset)


@api.get("/files", response={200: FilePage, **ERRORS}, tags=["files"])
def file_list(request, query: Query[FilePageQuery]):
    if query.purpose not in (None, "fine-tune"):
        return {"object": "list", "data": [], "has_more": False}
    return cursor_page(
        Dataset.objects.filter(organization=request.organization).defer("report"),
        after=_after(FILE, query.after, "file"),
        limit=query.limit,
        present=file_object,
        ascending=query.order == "asc",
    )


@api.get("/files/{file_id}", response={200: FileObject, **ERRORS}, tags=["files"])
def file_retrieve(request, file_id: str):
    return file_object(_dataset(request, file_id))


@api.delete("/files/{file_id}", response={200: FileDeleted, **ERRORS}, tags=["files"])
def file_delete(request, file_id: str):
    dataset = _dataset(request, file_id)
    try:
        dataset_delete(dataset_id=dataset.pk)
    except ProtectedError as used:
        raise ApiError(
            409,
            f"File {file_id} is the training file of a fine-tuning job and is kept with it.",
            code="file_in_use",
        ) from used
    return {"id": file_id, "object": "file", "deleted": True}


@api.get(
    "/files/{file_id}/content",
    response={200: bytes, **ERRORS},
    tags=["files"],
    openapi_extra={
        "responses": {200: {"content": {"application/octet-stream": {}}, "description": "OK"}}
    },
)
def file_content(request, file_id: str):
    dataset = _dataset(request, file_id)
    if not dataset.file or not default_storage.exists(dataset.file):
        raise ApiError(404, f"The content of {file_id} is no longer stored.", code="not_found")
    return FileResponse(
        default_storage.open(dataset.file, "rb"),
        as_attachment=True,
        filename=dataset.original_filename,
        content_type="application/octet-stream",
    )


# --- fine-tuning jobs ---------------------------------------------------------------


@api.post("/fine_tuning/jobs", response={200: JobObject, **ERRORS}, tags=["fine-tuning"])
def job_create(request, payload: JobCreate):
    """Create a fine-tuning job. Checked as the wizard checks it: allow-list, ranges, the
    file's organization and status, the GPU plan, region capacity, and the balance
    (HTTP 402 when it is below the upper estimate)."""
    job = api_job_submit(api_key=request.api_key, body=payload)
    return job_object(jobs_for(request.organization).get(pk=job.pk))


@api.get("/fine_tuning/jobs", response={200: JobPage, **ERRORS}, tags=["fine-tuning"])
def job_list(request, query: Query[PageQuery]):
    jobs = jobs_for(request.organization)
    return cursor_page(
        jobs, after=_after(JOB, query.after, "job"), limit=query.limit, present=job_object
    )


@api.get(
    "/fine_tuning/jobs/{fine_tuning_job_id}",
    response={200: JobObject, **ERRORS},
    tags=["fine-tuning"],
)
def job_retrieve(request, fine_tuning_job_id: str):
    return job_object(get_job(request.organization, fine_tuning_job_id))


@api.post(
    "/fine_tuning/jobs/{fine_tuning_job_id}/cancel",
    response={200: JobObject, **ERRORS},
    tags=["fine-tuning"],
)
def job_cancel_view(request, fine_tuning_job_id: str):
    return job_act(request.organization, fine_tuning_job_id, lambda pk: job_cancel(job_id=pk))


@api.post(
    "/fine_tuning/jobs/{fine_tuning_job_id}/pause",
    response={200: JobObject, **ERRORS},
    tags=["fine-tuning"],
)
def job_pause_view(request, fine_tuning_job_id: str):
    """Checkpoint and stop; the meter stops. A queued job is not running yet: cancel it."""
    return job_act(
        request.organization, fine_tuning_job_id, lambda pk: job_pause(job_id=pk, reason="user")
    )


@api.post(
    "/fine_tuning/jobs/{fine_tuning_job_id}/resume",
    response={200: JobObject, **ERRORS},
    tags=["fine-tuning"],
)
def job_resume_view(request, fine_tuning_job_id: str):
    """Continue a paused job from its latest checkpoint, if the balance covers the rest."""
    return job_act(request.organization, fine_tuning_job_id, lambda pk: job_resume(job_id=pk))


@api.get(
    "/fine_tuning/jobs/{fine_tuning_job_id}/events",
    response={200: EventPage, **ERRORS},
    tags=["fine-tuning"],
)
def job_events(request, fine_tuning_job_id: str, query: Query[PageQuery]):
    """The job's events, newest first: status changes, phases, checkpoints, and one
    `metrics` event per logged training step (`data.step`, `data.train_loss`, …)."""
    job = get_job(request.organization, fine_tuning_job_id)
    return cursor_page(
        JobEvent.objects.filter(job=job),
        after=_after(EVENT, query.after, "event"),
        limit=query.limit,
        present=event_object,
    )


@api.get(
    "/fine_tuning/jobs/{fine_tuning_job_id}/checkpoints",
    response={200: CheckpointPage, **ERRORS},
    tags=["fine-tuning"],
)
def job_checkpoints(request, fine_tuning_job_id: str, query: Query[PageQuery]):
    """Checkpoints the trainer wrote, newest first, with the losses at their step."""
    job = get_job(request.organization, fine_tuning_job_id)
    losses: dict[int, dict] = {}
    for kind, step, loss in JobMetric.objects.filter(job=job).values_list("kind", "step", "loss"):
        name = "train_loss" if kind == JobMetric.Kind.TRAIN else "valid_loss"
        losses.setdefault(step, {})[name] = loss
    return cursor_page(
        JobEvent.objects.filter(job=job, kind="checkpoint"),
        after=_after(CHECKPOINT, query.after, "checkpoint"),
        limit=query.limit,
        present=lambda event: checkpoint_object(event, job, losses),
    )


# --- models -------------------------------------------------------------------------


def _base_model_object(base: BaseModel) -> dict:
    return {
        "id": base.hf_id,
        "object": "model",
        "created": CATALOG_EPOCH,
        "owned_by": "ecolink",
        "display_name": base.display_name,
        "context_length": base.context_length,
        "fine_tunable": True,
    }


def _adapter_object(adapter: RegisteredAdapter) -> dict:
    return {
        "id": adapter.model_id,
        "object": "model",
        "created": unix(adapter.created_at),
        "owned_by": adapter.organization.slug,
        "root": adapter.base_model.hf_id,
        "parent": adapter.base_model.hf_id,
        "fine_tuning_job_id": f"{JOB}{adapter.job_id}",
        "fine_tunable": False,
    }


def _adapters(request):
    return RegisteredAdapter.objects.filter(organization=request.organization).select_related(
        "organization", "base_model"
    )


@api.get("/models", response={200: ModelPage, **ERRORS}, tags=["models"])
def model_list(request):
    """Base models open for fine-tuning, then this organization's fine-tuned models."""
    data = [_base_model_object(b) for b in eligible_bases()]
    data += [_adapter_object(a) for a in _adapters(request)]
    return {"object": "list", "data": data, "has_more": False}


@api.get("/models/{path:model}", response={200: ModelObject, **ERRORS}, tags=["models"])
def model_retrieve(request, model: str):
    base = eligible_bases().filter(hf_id=model).first()
    if base is not None:
        return _base_model_object(base)
    adapter = _adapters(request).filter(model_id=model).first()
    if adapter is not None:
        return _adapter_object(adapter)
    raise ApiError(404, f"The model {model!r} does not exist.", code="model_not_found")
