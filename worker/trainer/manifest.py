"""The run manifest (`output_dir/manifest.json`): what was trained from what, with which
realised hyperparameters and library versions, and how it ended."""

from __future__ import annotations

import importlib.metadata
import json
import os
import platform
import time
from pathlib import Path
from typing import Any

from worker.trainer.config import RunConfig

LIBRARIES = (
    "torch",
    "transformers",
    "peft",
    "trl",
    "accelerate",
    "bitsandbytes",
    "tokenizers",
    "safetensors",
)


def library_versions() -> dict[str, str | None]:
    versions: dict[str, str | None] = {"python": platform.python_version()}
    for name in LIBRARIES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def hyperparameters(config: RunConfig, realised: dict[str, Any]) -> dict[str, Any]:
    """Every hyperparameter as the run used it (realised values override the config's)."""
    out: dict[str, Any] = {
        "method": config.method,
        "objective": config.objective,
        "train_on_inputs": config.train_on_inputs,
        "epochs": config.epochs,
        "max_steps": config.max_steps,
        "learning_rate": config.learning_rate,
        "lr_scheduler": config.lr_scheduler,
        "min_lr_ratio": config.min_lr_ratio,
        "weight_decay": config.weight_decay,
        "max_grad_norm": config.max_grad_norm,
        "gradient_checkpointing": config.gradient_checkpointing,
        "precision": config.precision,
        "save_steps": config.save_steps,
        "eval_steps": config.eval_steps,
        "early_stopping_patience": config.early_stopping_patience,
        "early_stopping_threshold": config.early_stopping_threshold,
        "micro_batch_size_hint": config.micro_batch_size,
    }
    if config.method in ("lora", "qlora"):
        out["lora"] = vars(config.lora).copy()
    if config.method == "qlora":
        out["qlora"] = vars(config.qlora).copy()
    if config.method == "prompt_tuning":
        out["prompt_tuning"] = vars(config.prompt_tuning).copy()
    if config.objective == "dpo":
        out["dpo"] = vars(config.dpo).copy()
    out.update(realised)
    return out


def build(
    config: RunConfig,
    *,
    run_id: str,
    base_model_revision: str | None,
    realised: dict[str, Any],
    data: dict[str, Any],
    metrics: dict[str, Any],
    total_steps: int,
    early_stopped: bool,
    resumed_from: str | None,
    artifacts: dict[str, str],
) -> dict[str, Any]:
    return {
        "job_id": config.job_id,
        "run_id": run_id,
        "created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "base_model": config.base_model,
        "base_model_revision": base_model_revision,
        "dataset_hash": config.dataset_hash,
        "train_file": config.train_file,
        "validation_file": config.validation_file,
        "seed": config.seed,
        "hyperparameters": hyperparameters(config, realised),
        "data": data,
        "metrics": metrics,
        "total_steps": total_steps,
        "early_stopped": early_stopped,
        "resumed_from": resumed_from,
        "artifacts": artifacts,
        "library_versions": library_versions(),
        "config": config.to_dict(),
    }


def write(path: Path, manifest: dict[str, Any]) -> Path:
    """Write atomically: a reader sees the old manifest or the whole new one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with temp.open("w", encoding="utf-8") as handle:
        json.dump(manifest, handle, indent=2, sort_keys=True, default=str)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temp, path)
    return path
