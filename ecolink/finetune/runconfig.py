"""Render the trainer's run config for a job: everything the pod needs, nothing secret.

The shape is `worker.trainer.config.RunConfig`; the job token travels in the pod's
environment, never in this file.
"""

from pathlib import Path

from django.conf import settings
from django.core.files.storage import default_storage

from ecolink.finetune.models import Job
from ecolink.finetune.planning.quote import Quote
from worker.trainer.config import RunConfig


def job_artifacts_dir(job_id: int) -> Path:
    return settings.ARTIFACTS_DIR / "jobs" / str(job_id)


def storage_local_path(storage_key: str) -> str:
    return default_storage.path(storage_key) if storage_key else ""


def base_model_reference(quote: Quote) -> str:
    return quote.base_model.local_path or quote.base_model.hf_id


def render_run_config(*, job: Job, quote: Quote) -> dict:
    """The run config as the trainer will read it; raises ConfigError if it would refuse it."""
    hp = quote.hyperparameters
    dataset = quote.dataset
    out = job_artifacts_dir(job.pk)
    config = {
        "job_id": str(job.pk),
        "base_model": base_model_reference(quote),
        "base_model_revision": "local" if quote.base_model.local_path else "main",
        "train_file": storage_local_path(getattr(dataset, "train_file", "")),
        "validation_file": storage_local_path(getattr(dataset, "validation_file", "")) or None,
        "dataset_hash": dataset.content_hash,
        "method": quote.plan.method,
        "objective": hp["objective"],
        "train_on_inputs": "auto",
        "epochs": hp["epochs"],
        "learning_rate": hp["learning_rate"],
        "warmup_steps": hp["warmup_steps"],
        "weight_decay": hp["weight_decay"],
        "lr_scheduler": "cosine",
        "max_grad_norm": 1.0,
        "effective_batch_size": quote.effective_batch_size,
        "micro_batch_size": max(1, quote.plan.micro_batch_hint),
        "max_seq_length": hp["max_seq_length"],
        "seed": hp["seed"],
        "save_steps": hp["save_steps"],
        "eval_steps": hp["save_steps"],
        "logging_steps": 1,
        "keep_last_checkpoints": 2,
        "early_stopping_patience": 0,
        "lora": {
            "r": hp["lora_r"],
            "alpha": hp["lora_alpha"],
            "dropout": hp["lora_dropout"],
            "target_modules": list(hp["target_modules"]),
        },
        "qlora": {"quant_type": "nf4", "double_quant": True, "compute_dtype": "auto"},
        "dpo": {"beta": hp["dpo_beta"]},
        "world_size": quote.gpu_count,
        "output_dir": str(out),
        "checkpoint_dir": str(out / "checkpoints"),
        "resume_from": None,
        "events_url": None,
        "events_file": None,
    }
    return RunConfig.from_dict(config).to_dict()
