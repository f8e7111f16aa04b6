"""Hyperparameter defaults and allowed ranges (seeds 001 and 002), in one place for the
wizard, the API and the run config."""

from dataclasses import dataclass
from typing import Any

MAX_SEQ_LENGTH_CAP = 4096


@dataclass(frozen=True)
class Range:
    low: float
    high: float
    default: float
    help: str
    integer: bool = True
    label: str = ""


RANGES: dict[str, Range] = {
    # Tier 1
    "epochs": Range(1, 50, 3, "Passes over the dataset."),
    "learning_rate": Range(
        1e-6, 1e-2, 2e-4, "Step size; 2e-4 is typical for LoRA SFT.", integer=False
    ),
    "lora_r": Range(1, 256, 16, "Rank of the adapter: capacity against size.", label="LoRA r"),
    "lora_alpha": Range(1, 512, 32, "Scaling of the adapter, usually 2 × r.", label="LoRA alpha"),
    "micro_batch_size": Range(1, 32, 4, "Examples per step on each GPU."),
    # Tier 2
    "lora_dropout": Range(
        0.0, 0.5, 0.05, "Dropout on the adapter; 0.0–0.1 is usual.", False, "LoRA dropout"
    ),
    "gradient_accumulation": Range(1, 32, 4, "Steps accumulated before each update."),
    "max_seq_length": Range(128, MAX_SEQ_LENGTH_CAP, 2048, "Longer examples are truncated."),
    "save_steps": Range(1, 100_000, 50, "Optimizer steps between checkpoints."),
    "seed": Range(0, 2**31 - 1, 42, "For reproducible shuffling and initialisation."),
    "warmup_steps": Range(0, 10_000, 0, "Steps of linear learning-rate warm-up."),
    "weight_decay": Range(0.0, 1.0, 0.01, "L2 regularisation strength.", integer=False),
    "dpo_beta": Range(
        0.01, 1.0, 0.1, "DPO: how far the policy may move from the base.", False, "DPO beta"
    ),
}


def default_hyperparameters(*, context_length: int) -> dict[str, Any]:
    values: dict[str, Any] = {name: r.default for name, r in RANGES.items()}
    values["max_seq_length"] = min(context_length, MAX_SEQ_LENGTH_CAP)
    values["target_modules"] = ["q_proj", "v_proj"]
    values["method"] = "auto"
    values["objective"] = "sft"
    return values
