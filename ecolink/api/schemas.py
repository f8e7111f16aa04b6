"""Request and response bodies of the API, for validation and the OpenAPI schema.

Requests are strict about types; ranges are checked by the same wizard forms the browser
goes through (`finetune.services.job_request_quote`), so they are written once.
Responses list the fields the SDK reads and allow EcoLink's extra ones.
"""

from typing import Any, Literal

from ninja import Schema
from pydantic import BaseModel, ConfigDict, Field

Auto = Literal["auto"]
TrainingMethod = Literal["auto", "lora", "qlora", "full", "prompt_tuning"]


class Strict(Schema):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


class Open(BaseModel):
    """A response body: the listed fields, and whatever else EcoLink adds."""

    model_config = ConfigDict(extra="allow")


# --- Requests -----------------------------------------------------------------------


class Hyperparameters(Strict):
    n_epochs: Auto | int | None = Field(None, description="Passes over the data (1-50).")
    batch_size: Auto | int | None = Field(
        None, description="Examples per optimizer step, across all GPUs."
    )
    learning_rate_multiplier: Auto | float | None = Field(
        None, description="Multiplies EcoLink's default learning rate (2e-4)."
    )
    beta: Auto | float | None = Field(None, description="DPO only: KL penalty strength.")
    # EcoLink's own knobs (seed 002).
    learning_rate: float | None = Field(None, description="Absolute learning rate (1e-6-1e-2).")
    max_seq_length: int | None = Field(None, description="Tokens per example (128-4096).")
    warmup_steps: int | None = None
    weight_decay: float | None = None
    save_steps: int | None = Field(None, description="Optimizer steps between checkpoints.")


class MethodHyperparameters(Schema):
    model_config = ConfigDict(extra="ignore", allow_inf_nan=False)

    hyperparameters: Hyperparameters | None = None


class Method(Schema):
    model_config = ConfigDict(extra="ignore")

    type: Literal["supervised", "dpo", "reinforcement"]
    supervised: MethodHyperparameters | None = None
    dpo: MethodHyperparameters | None = None


class Lora(Strict):
    r: int | None = Field(None, description="Adapter rank (1-256).")
    alpha: int | None = Field(None, description="Adapter scaling (1-512).")
    dropout: float | None = Field(None, description="Adapter dropout (0-0.5).")
    target_modules: list[str] | None = Field(
        None, description="Projections to adapt, e.g. q_proj, v_proj."
    )


class JobCreate(Schema):
    model_config = ConfigDict(extra="ignore", allow_inf_nan=False)

    model: str = Field(..., description="A base model id from GET /v1/models.")
    training_file: str = Field(..., description="The id of a processed file.")
    validation_file: str | None = None
    hyperparameters: Hyperparameters | None = None
    method: Method | None = None
    suffix: str | None = Field(None, max_length=64)
    seed: int | None = None
    metadata: dict[str, str] | None = None
    integrations: list[Any] | None = None
    # EcoLink's options.
    name: str | None = Field(None, max_length=200)
    gpu_type: str | None = Field(None, description="A GPU type slug (hardware-options).")
    gpu_count: int | None = Field(None, description="GPUs for the job (1-8).")
    region: str | None = Field(None, description="A region slug (hardware-options).")
    lora: Lora | None = None
    training_method: TrainingMethod | None = Field(
        None, description="auto picks LoRA, or QLoRA when the base doesn't fit in 16-bit."
    )


class HardwareCheck(Strict):
    model: str
    gpu_type: str
    gpu_count: int = 1
    region: str | None = None
    training_method: TrainingMethod = "auto"
    micro_batch_size: int = 4
    max_seq_length: int | None = Field(None, description="Default: min(2048, context).")
    lora_r: int = 16
    target_modules: list[str] = Field(default_factory=lambda: ["q_proj", "v_proj"])


# --- Responses ----------------------------------------------------------------------


class ErrorDetail(Open):
    message: str
    type: str
    param: str | None = None
    code: str | None = None


class ErrorBody(BaseModel):
    error: ErrorDetail


class FileObject(Open):
    id: str
    object: Literal["file"]
    bytes: int
    created_at: int
    filename: str
    purpose: str
    status: str


class FileDeleted(BaseModel):
    id: str
    object: Literal["file"]
    deleted: bool


class JobObject(Open):
    id: str
    object: Literal["fine_tuning.job"]
    created_at: int
    status: str
    model: str
    training_file: str
    fine_tuned_model: str | None = None


class EventObject(Open):
    id: str
    object: Literal["fine_tuning.job.event"]
    created_at: int
    level: str
    message: str


class CheckpointObject(Open):
    id: str
    object: Literal["fine_tuning.job.checkpoint"]
    created_at: int
    step_number: int
    fine_tuning_job_id: str


class ModelObject(Open):
    id: str
    object: Literal["model"]
    created: int
    owned_by: str


class Page(Open):
    object: Literal["list"]
    data: list[dict[str, Any]]
    has_more: bool = False


class FilePage(Page):
    data: list[FileObject]


class JobPage(Page):
    data: list[JobObject]


class EventPage(Page):
    data: list[EventObject]


class CheckpointPage(Page):
    data: list[CheckpointObject]


class ModelPage(Page):
    data: list[ModelObject]


ERRORS = {400: ErrorBody, 401: ErrorBody, 402: ErrorBody, 404: ErrorBody, 409: ErrorBody}
