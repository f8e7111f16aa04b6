"""Base model and tokenizer loading, and the fine-tuning method on top: LoRA, QLoRA (4-bit
NF4 base through bitsandbytes, LoRA on top), full fine-tuning, or prompt tuning."""

from __future__ import annotations

import importlib.util
import logging
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file

from worker.trainer.config import ConfigError, RunConfig

log = logging.getLogger(__name__)

PEFT_METHODS = ("lora", "qlora", "prompt_tuning")


def load_tokenizer(config: RunConfig) -> Any:
    from transformers import AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(
            config.base_model, revision=config.base_model_revision
        )
    except OSError as exc:
        raise ConfigError("base_model", f"cannot load {config.base_model!r}: {exc}") from exc
    if tokenizer.pad_token_id is None:  # padding only fills row tails; it never carries loss
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def context_length(config: RunConfig) -> int | None:
    """The base model's maximum positions, if its config states one."""
    from transformers import AutoConfig

    model_config = AutoConfig.from_pretrained(
        config.base_model, revision=config.base_model_revision
    )
    return getattr(model_config, "max_position_embeddings", None)


def realised_max_length(config: RunConfig) -> int:
    """max_seq_length, capped to what the model's positions allow (soft prompt included)."""
    limit = context_length(config)
    wanted = config.max_seq_length
    if config.method == "prompt_tuning":
        wanted += config.prompt_tuning.num_virtual_tokens
    if limit and wanted > limit:
        log.warning("max_seq_length %d exceeds the model's %d positions: capped", wanted, limit)
        wanted = limit
    if config.method == "prompt_tuning":
        wanted -= config.prompt_tuning.num_virtual_tokens
    return wanted


def autocast_dtype(config: RunConfig, device: torch.device) -> torch.dtype | None:
    """The autocast dtype for forward passes, or None for plain fp32 (always on the CPU)."""
    if device.type != "cuda" or config.precision == "fp32":
        return None
    if config.precision == "bf16" or torch.cuda.is_bf16_supported():
        return torch.bfloat16
    return None


def _qlora_compute_dtype(config: RunConfig, device: torch.device) -> torch.dtype:
    name = config.qlora.compute_dtype
    if name != "auto":
        return getattr(torch, name)
    if device.type != "cuda":
        return torch.float32
    return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16


def _attention_implementation(device: torch.device) -> str:
    # Both isolate packed examples from their position ids; flash-attention skips the
    # masked blocks entirely, SDPA computes them under a block-diagonal mask.
    if device.type == "cuda" and importlib.util.find_spec("flash_attn") is not None:
        return "flash_attention_2"
    return "sdpa"


def load_model(config: RunConfig, device: torch.device) -> Any:
    """The base model with the configured method applied, on `device`, in train mode."""
    from transformers import AutoModelForCausalLM, BitsAndBytesConfig

    half = autocast_dtype(config, device)
    kwargs: dict[str, Any] = {
        "revision": config.base_model_revision,
        "attn_implementation": _attention_implementation(device),
        # Frozen bases may sit in half precision; fully trained weights stay fp32.
        "dtype": half if half is not None and config.method != "full" else torch.float32,
    }
    if config.method == "qlora":
        kwargs["quantization_config"] = BitsAndBytesConfig(
            load_in_4bit=True,
            bnb_4bit_quant_type=config.qlora.quant_type,
            bnb_4bit_use_double_quant=config.qlora.double_quant,
            bnb_4bit_compute_dtype=_qlora_compute_dtype(config, device),
        )
        kwargs["device_map"] = {"": device}
    model = AutoModelForCausalLM.from_pretrained(config.base_model, **kwargs)
    if config.method != "qlora":
        model.to(device)
    model.config.use_cache = False  # a cache would switch off the packed-sequence mask
    if config.gradient_checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})

    if config.method == "full":
        model.requires_grad_(True)
    elif config.method in ("lora", "qlora"):
        model = _apply_lora(model, config)
    else:
        model = _apply_prompt_tuning(model, config)
    model.train()
    return model


def _apply_lora(model: Any, config: RunConfig) -> Any:
    from peft import LoraConfig, get_peft_model, prepare_model_for_kbit_training

    if config.method == "qlora":
        model = prepare_model_for_kbit_training(
            model, use_gradient_checkpointing=config.gradient_checkpointing
        )
        _keep_4bit_layers_trainable(model)
    targets = config.lora.target_modules
    lora = LoraConfig(
        r=config.lora.r,
        lora_alpha=config.lora.alpha,
        lora_dropout=config.lora.dropout,
        target_modules="all-linear" if targets == ["all-linear"] else targets,
        task_type="CAUSAL_LM",
    )
    try:
        return get_peft_model(model, lora)
    except ValueError as exc:
        raise ConfigError("lora.target_modules", str(exc)) from exc


def _keep_4bit_layers_trainable(model: Any) -> None:
    """On CPUs with AVX512-BF16, bitsandbytes repacks a 4-bit weight in place the first
    time it runs in eval mode without gradients (our evaluation and DPO reference passes),
    into an inference-only layout that breaks every later training step. Opt out."""
    import bitsandbytes as bnb

    for module in model.modules():
        if isinstance(module, bnb.nn.Linear4bit):
            module.support_avx512bf16_for_cpu = False


def _apply_prompt_tuning(model: Any, config: RunConfig) -> Any:
    from peft import PromptTuningConfig, PromptTuningInit, get_peft_model

    settings = config.prompt_tuning
    kwargs: dict[str, Any] = {"prompt_tuning_init": PromptTuningInit.RANDOM}
    if settings.init_text:
        kwargs = {
            "prompt_tuning_init": PromptTuningInit.TEXT,
            "prompt_tuning_init_text": settings.init_text,
            "tokenizer_name_or_path": config.base_model,
        }
    peft_config = PromptTuningConfig(
        task_type="CAUSAL_LM", num_virtual_tokens=settings.num_virtual_tokens, **kwargs
    )
    return get_peft_model(model, peft_config)


def is_peft(model: Any) -> bool:
    return hasattr(model, "peft_config")


def save_weights(model: Any, folder: Path) -> None:
    """The adapter (adapter_model.safetensors + adapter_config.json) or, for full
    fine-tuning, the full weights, in `folder`."""
    model.save_pretrained(folder, safe_serialization=True)


def load_weights(model: Any, folder: Path) -> None:
    """Put the trained weights saved by `save_weights` back into a freshly built model."""
    if is_peft(model):
        from peft import set_peft_model_state_dict

        result = set_peft_model_state_dict(model, load_file(folder / "adapter_model.safetensors"))
        # (a soft prompt is loaded separately by peft and listed as missing regardless)
        missing = [k for k in result.missing_keys if "lora_" in k]
        if missing:
            raise RuntimeError(f"checkpoint {folder} lacks adapter weights {missing[:3]}")
        return
    state: dict[str, torch.Tensor] = {}
    for shard in sorted(folder.glob("*.safetensors")):
        state.update(load_file(shard))
    result = model.load_state_dict(state, strict=False)
    tied = set(getattr(model, "all_tied_weights_keys", {}) or {})
    missing = [k for k in result.missing_keys if k not in tied]
    if missing or result.unexpected_keys:
        raise RuntimeError(
            f"checkpoint {folder} does not match the model: missing {missing[:3]}, "
            f"unexpected {result.unexpected_keys[:3]}"
        )
