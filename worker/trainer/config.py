"""The run config: one JSON file per training run, rendered by the platform and validated
again by the pod. Standard library only, so the Django side can import it to validate.

Every field carries its help text, and its range where it has one, in its metadata
(`help`, `min`, `max`, `gt`); the `Literal` type hints are the allowed choices. A bad
value raises `ConfigError` naming the field, e.g. `lora.r: must be between 1 and 256, got 0`.
The job token is never part of this file: it comes from the `ECOLINK_JOB_TOKEN` variable.
"""

from __future__ import annotations

import json
import types
import typing
from dataclasses import MISSING, asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Literal

JOB_TOKEN_ENV = "ECOLINK_JOB_TOKEN"  # noqa: S105 (a variable name, not a secret)

Method = Literal["lora", "qlora", "full", "prompt_tuning"]
Objective = Literal["sft", "dpo"]
TrainOnInputs = Literal["auto", "true", "false"]
Scheduler = Literal["cosine", "linear"]
Precision = Literal["auto", "fp32", "bf16"]
ComputeDtype = Literal["auto", "float16", "bfloat16", "float32"]
TrackerKind = Literal["wandb", "mlflow", "comet"]


class ConfigError(ValueError):
    """A run config value is missing, unknown or out of range; `field` names it."""

    def __init__(self, field_name: str, message: str) -> None:
        super().__init__(f"{field_name}: {message}")
        self.field = field_name
        self.reason = message

    def under(self, prefix: str) -> ConfigError:
        return ConfigError(f"{prefix}.{self.field}", self.reason)


def meta(help: str, **limits: Any) -> dict[str, Any]:
    """Field metadata: the help text, and optional `min`, `max` or `gt` limits."""
    return {"help": help, **limits}


def _check_fields(obj: Any) -> None:
    """Check every field of a config dataclass against its type and its limits."""
    hints = typing.get_type_hints(type(obj))
    for spec in fields(obj):
        name, value = spec.name, getattr(obj, spec.name)
        setattr(obj, name, _coerce(value, hints[name], name))
        value = getattr(obj, name)
        if value is None or isinstance(value, bool):
            continue
        low, high, gt = (spec.metadata.get(k) for k in ("min", "max", "gt"))
        if isinstance(value, int | float):
            if low is not None and high is not None and not low <= value <= high:
                raise ConfigError(name, f"must be between {low} and {high}, got {value}")
            if low is not None and value < low:
                raise ConfigError(name, f"must be at least {low}, got {value}")
            if high is not None and value > high:
                raise ConfigError(name, f"must be at most {high}, got {value}")
            if gt is not None and value <= gt:
                raise ConfigError(name, f"must be greater than {gt}, got {value}")


def _coerce(value: Any, hint: Any, name: str) -> Any:
    """Return `value` as the type `hint` asks for, or raise ConfigError naming the field."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        (inner,) = [a for a in args if a is not type(None)]
        return _coerce(value, inner, name)
    if origin is Literal:
        if value not in args:
            choices = ", ".join(repr(a) for a in args)
            raise ConfigError(name, f"must be one of {choices}, got {value!r}")
        return value
    if origin is list:
        if not isinstance(value, list | tuple):
            raise ConfigError(name, f"must be a list, got {type(value).__name__}")
        return [_coerce(item, args[0], f"{name}[{i}]") for i, item in enumerate(value)]
    if isinstance(hint, type) and hasattr(hint, "__dataclass_fields__"):
        if isinstance(value, hint):
            return value
        if not isinstance(value, dict):
            raise ConfigError(name, f"must be an object, got {type(value).__name__}")
        return _from_dict(hint, value, prefix=name)
    if hint is bool:
        if not isinstance(value, bool):
            raise ConfigError(name, f"must be true or false, got {value!r}")
        return value
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(name, f"must be an integer, got {value!r}")
        return value
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ConfigError(name, f"must be a number, got {value!r}")
        if value != value or value in (float("inf"), float("-inf")):
            raise ConfigError(name, f"must be a finite number, got {value!r}")
        return float(value)
    if hint is str:
        if not isinstance(value, str):
            raise ConfigError(name, f"must be a string, got {value!r}")
        return value
    raise TypeError(f"unsupported config type {hint!r} for {name}")


def _from_dict(cls: type, data: dict[str, Any], prefix: str = "") -> Any:
    known = {f.name for f in fields(cls)}
    for key in data:
        if key not in known:
            where = f"{prefix}.{key}" if prefix else key
            raise ConfigError(where, "unknown field")
    missing = [f.name for f in fields(cls) if f.name not in data and _is_required(f)]
    if missing:
        where = f"{prefix}.{missing[0]}" if prefix else missing[0]
        raise ConfigError(where, "is required")
    try:
        return cls(**data)
    except ConfigError as exc:
        raise exc.under(prefix) if prefix else exc from None


def _is_required(spec: Any) -> bool:
    return spec.default is MISSING and spec.default_factory is MISSING


@dataclass
class LoraSettings:
    """LoRA adapter shape (also used by QLoRA)."""

    r: int = field(
        default=16,
        metadata=meta("Rank of the adapter matrices: capacity against size.", min=1, max=256),
    )
    alpha: int = field(
        default=32, metadata=meta("Scaling factor of the adapter, usually 2 x r.", min=1, max=512)
    )
    dropout: float = field(
        default=0.1,
        metadata=meta(
            "Dropout on the adapter input (the wizard suggests 0.0-0.1).", min=0.0, max=0.5
        ),
    )
    target_modules: list[str] = field(
        default_factory=lambda: ["q_proj", "v_proj"],
        metadata=meta(
            "Module names that get an adapter, or ['all-linear'] for every linear layer."
        ),
    )

    def __post_init__(self) -> None:
        _check_fields(self)
        if not self.target_modules or any(not m.strip() for m in self.target_modules):
            raise ConfigError("target_modules", "must name at least one module")


@dataclass
class QLoraSettings:
    """4-bit quantisation of the frozen base model (bitsandbytes)."""

    bits: int = field(
        default=4, metadata=meta("Quantisation precision of the base weights; only 4 is supported.")
    )
    quant_type: Literal["nf4", "fp4"] = field(
        default="nf4", metadata=meta("4-bit data type: NF4 or FP4.")
    )
    double_quant: bool = field(
        default=True, metadata=meta("Quantise the quantisation constants too.")
    )
    compute_dtype: ComputeDtype = field(
        default="auto",
        metadata=meta(
            "Compute precision of the 4-bit layers. auto: bfloat16 on GPUs that support it, "
            "float16 on other GPUs, float32 on the CPU."
        ),
    )

    def __post_init__(self) -> None:
        _check_fields(self)
        if self.bits != 4:
            raise ConfigError("bits", f"only 4-bit QLoRA is supported, got {self.bits}")


@dataclass
class PromptTuningSettings:
    """Soft prompt learnt in front of every example; the whole model stays frozen."""

    num_virtual_tokens: int = field(
        default=20, metadata=meta("Length of the learnt soft prompt.", min=1, max=512)
    )
    init_text: str | None = field(
        default=None,
        metadata=meta("Initialise the soft prompt from this text's embeddings (random if unset)."),
    )

    def __post_init__(self) -> None:
        _check_fields(self)


@dataclass
class DpoSettings:
    """Direct Preference Optimization."""

    beta: float = field(
        default=0.1,
        metadata=meta(
            "Strength of the KL constraint towards the reference model.", gt=0.0, max=10.0
        ),
    )

    def __post_init__(self) -> None:
        _check_fields(self)


@dataclass
class TrackerSettings:
    """An experiment tracker that receives params and metrics, tagged with the job id.

    API keys come from the tracker's own environment variables (WANDB_API_KEY,
    COMET_API_KEY, MLFLOW_TRACKING_TOKEN), never from this file."""

    kind: TrackerKind = field(metadata=meta("Which tracker: wandb, mlflow or comet."))
    project: str | None = field(
        default=None,
        metadata=meta("W&B project, Comet project or MLflow experiment name (default 'ecolink')."),
    )
    tracking_uri: str | None = field(
        default=None, metadata=meta("MLflow tracking URI (e.g. file:///data/mlruns).")
    )
    entity: str | None = field(default=None, metadata=meta("W&B entity or Comet workspace."))
    run_name: str | None = field(
        default=None, metadata=meta("Run name shown in the tracker (default: the job id).")
    )

    def __post_init__(self) -> None:
        _check_fields(self)


@dataclass
class RunConfig:
    """Everything one training run needs, except the job token."""

    job_id: str = field(
        metadata=meta("The platform's job id; tags events, manifest and tracker runs.")
    )
    base_model: str = field(metadata=meta("Base model: a local folder or a Hugging Face model id."))
    train_file: str = field(
        metadata=meta("JSONL training records in the normalised shape (records.py).")
    )
    output_dir: str = field(
        metadata=meta("Folder for checkpoints, the final adapter and the manifest.")
    )
    base_model_revision: str | None = field(
        default=None, metadata=meta("Revision (commit) of a hub base model.")
    )
    validation_file: str | None = field(
        default=None, metadata=meta("JSONL validation records (same shape).")
    )
    dataset_hash: str = field(
        default="", metadata=meta("Hash of the dataset files, recorded in the manifest.")
    )
    method: Method = field(
        default="lora", metadata=meta("lora, qlora (4-bit NF4 base), full or prompt_tuning.")
    )
    objective: Objective = field(
        default="sft", metadata=meta("sft (supervised) or dpo (preference pairs).")
    )
    train_on_inputs: TrainOnInputs = field(
        default="auto",
        metadata=meta(
            "SFT loss on prompt tokens too? auto: mask prompts for chat and instruction data, "
            "train on everything for plain text (which has no prompt to mask)."
        ),
    )
    epochs: int = field(default=3, metadata=meta("Passes over the training data.", min=1, max=50))
    max_steps: int = field(
        default=0, metadata=meta("Stop after this many optimizer steps (0: use epochs).", min=0)
    )
    learning_rate: float = field(
        default=2e-4, metadata=meta("Peak learning rate.", min=1e-6, max=1e-2)
    )
    warmup_steps: int = field(
        default=0, metadata=meta("Linear warmup steps (use this or warmup_ratio).", min=0)
    )
    warmup_ratio: float = field(
        default=0.0, metadata=meta("Warmup as a fraction of all steps.", min=0.0, max=1.0)
    )
    weight_decay: float = field(
        default=0.01, metadata=meta("AdamW weight decay on matrices.", min=0.0, max=1.0)
    )
    lr_scheduler: Scheduler = field(
        default="cosine", metadata=meta("Decay after warmup: cosine or linear.")
    )
    min_lr_ratio: float = field(
        default=0.0, metadata=meta("Final lr as a fraction of the peak.", min=0.0, max=1.0)
    )
    max_grad_norm: float = field(
        default=1.0, metadata=meta("Clip the gradient norm to this (0: no clipping).", min=0.0)
    )
    effective_batch_size: int = field(
        default=16,
        metadata=meta(
            "Examples (DPO: pairs) per optimizer step, realised exactly as micro-batch x "
            "gradient accumulation x world size.",
            min=1,
            max=1024,
        ),
    )
    micro_batch_size: int = field(
        default=4,
        metadata=meta(
            "The planner's hint for examples per forward pass; backs off on OOM.", min=1, max=32
        ),
    )
    max_seq_length: int = field(
        default=2048,
        metadata=meta("Longer examples are truncated (and counted).", min=128, max=4096),
    )
    packing: bool = field(
        default=True,
        metadata=meta(
            "Pack each micro-batch's examples into rows with per-example attention (no pad "
            "compute); off: pad to the micro-batch's longest example. Prompt tuning always "
            "pads."
        ),
    )
    gradient_checkpointing: bool = field(
        default=False, metadata=meta("Recompute activations to save memory.")
    )
    precision: Precision = field(
        default="auto",
        metadata=meta("auto: bf16 autocast on GPUs that support it, else fp32. CPU runs fp32."),
    )
    seed: int = field(
        default=42,
        metadata=meta("Seed for weights init, data order and dropout.", min=0, max=2**32 - 1),
    )
    save_steps: int = field(
        default=500, metadata=meta("Checkpoint every N optimizer steps (0: only on stop).", min=0)
    )
    eval_steps: int = field(
        default=500,
        metadata=meta("Evaluate every N steps (0: at the end of every epoch).", min=0),
    )
    logging_steps: int = field(default=10, metadata=meta("Send step metrics every N steps.", min=1))
    keep_last_checkpoints: int = field(
        default=3, metadata=meta("Complete checkpoints to keep.", min=1, max=100)
    )
    early_stopping_patience: int = field(
        default=0, metadata=meta("Stop after N evaluations without improvement (0: off).", min=0)
    )
    early_stopping_threshold: float = field(
        default=0.0,
        metadata=meta("Smallest eval-loss drop that counts as an improvement.", min=0.0),
    )
    lora: LoraSettings = field(
        default_factory=LoraSettings, metadata=meta("LoRA settings (lora, qlora).")
    )
    qlora: QLoraSettings = field(
        default_factory=QLoraSettings, metadata=meta("Quantisation settings (qlora).")
    )
    prompt_tuning: PromptTuningSettings = field(
        default_factory=PromptTuningSettings, metadata=meta("Soft prompt settings (prompt_tuning).")
    )
    dpo: DpoSettings = field(
        default_factory=DpoSettings, metadata=meta("DPO settings (objective dpo).")
    )
    world_size: int = field(
        default=1,
        metadata=meta(
            "Processes (one per GPU); above 1 the trainer relaunches under torchrun.", min=1
        ),
    )
    checkpoint_dir: str | None = field(
        default=None, metadata=meta("Checkpoints folder (default output_dir/checkpoints).")
    )
    resume_from: str | None = field(
        default=None,
        metadata=meta(
            "A checkpoint folder, or a checkpoints folder (its latest complete one). Unset: "
            "the latest complete checkpoint an earlier attempt of this job left, if any."
        ),
    )
    events_url: str | None = field(
        default=None, metadata=meta("Platform URL that receives batched progress events.")
    )
    events_file: str | None = field(
        default=None, metadata=meta("Also append every event as a JSON line here.")
    )
    tracker: TrackerSettings | None = field(
        default=None, metadata=meta("Optional W&B, MLflow or Comet reporting.")
    )

    def __post_init__(self) -> None:
        if isinstance(self.train_on_inputs, bool):  # JSON true/false mean "true"/"false"
            self.train_on_inputs = "true" if self.train_on_inputs else "false"
        _check_fields(self)
        for name in ("job_id", "base_model", "train_file", "output_dir"):
            if not getattr(self, name).strip():
                raise ConfigError(name, "must not be empty")
        if self.effective_batch_size % self.world_size:
            raise ConfigError(
                "effective_batch_size",
                f"must be a multiple of world_size ({self.world_size}), "
                f"got {self.effective_batch_size}",
            )
        if self.warmup_steps and self.warmup_ratio:
            raise ConfigError("warmup_ratio", "set warmup_steps or warmup_ratio, not both")
        if self.early_stopping_patience and not self.validation_file:
            raise ConfigError("early_stopping_patience", "needs a validation_file")
        if self.events_url and not self.events_url.startswith(("http://", "https://")):
            raise ConfigError("events_url", f"must be an http(s) URL, got {self.events_url!r}")

    @property
    def checkpoints_path(self) -> Path:
        return (
            Path(self.checkpoint_dir)
            if self.checkpoint_dir
            else Path(self.output_dir) / "checkpoints"
        )

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RunConfig:
        if not isinstance(data, dict):
            raise ConfigError("config", f"must be a JSON object, got {type(data).__name__}")
        return _from_dict(cls, data)

    @classmethod
    def from_json_file(cls, path: str | Path) -> RunConfig:
        try:
            data = json.loads(Path(path).read_text(encoding="utf-8"))
        except OSError as exc:
            raise ConfigError("config", f"cannot read {path}: {exc.strerror}") from exc
        except json.JSONDecodeError as exc:
            raise ConfigError("config", f"{path} is not valid JSON: {exc}") from exc
        return cls.from_dict(data)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)


def describe() -> dict[str, Any]:
    """The schema as {field: {help, default, ...}}, for forms and docs on the platform."""

    def walk(cls: type) -> dict[str, Any]:
        out: dict[str, Any] = {}
        hints = typing.get_type_hints(cls)
        for spec in fields(cls):
            hint = hints[spec.name]
            entry: dict[str, Any] = dict(spec.metadata)
            if spec.default is not MISSING:
                entry["default"] = spec.default
            elif spec.default_factory is not MISSING:
                default = spec.default_factory()
                entry["default"] = (
                    asdict(default) if hasattr(default, "__dataclass_fields__") else default
                )
            else:
                entry["required"] = True
            choices = [a for a in typing.get_args(hint) if typing.get_origin(hint) is Literal]
            if choices:
                entry["choices"] = choices
            out[spec.name] = entry
        return out

    return {
        "run": walk(RunConfig),
        "lora": walk(LoraSettings),
        "qlora": walk(QLoraSettings),
        "prompt_tuning": walk(PromptTuningSettings),
        "dpo": walk(DpoSettings),
        "tracker": walk(TrackerSettings),
    }
