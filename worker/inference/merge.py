"""Merging a LoRA adapter into its base model, and the check that the merge is right:
the merged model's logits must equal base+adapter's on a few prompts, within tolerance,
or the merged weights are never handed out.

No Django: the platform calls this in the process that exports.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# Prompts the check runs; chat-shaped, since that is how the models are called.
CHECK_PROMPTS = (
    [{"role": "user", "content": "hello, what is the cost of a GPU?"}],
    [{"role": "system", "content": "be brief"}, {"role": "user", "content": "train the model"}],
    [{"role": "user", "content": "fine tune the adapter layer weight please"}],
)
# float32 on the CPU agrees to ~1e-5; bf16/fp16 weights need more room.
DEFAULT_ATOL = 1e-3


class MergeMismatch(Exception):
    """The merged model does not reproduce base+adapter: refuse to export it."""

    def __init__(self, max_diff: float, atol: float) -> None:
        super().__init__(
            f"merged logits differ from base+adapter by up to {max_diff:.3g} (tolerance {atol:g})"
        )
        self.max_diff = max_diff


@dataclass
class MergeResult:
    folder: Path
    max_logit_diff: float


def merge_lora(base_path: str | Path, adapter_path: str | Path) -> Any:
    """base + adapter with the LoRA deltas folded into the weights (a plain model)."""
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    base = AutoModelForCausalLM.from_pretrained(base_path)
    return PeftModel.from_pretrained(base, str(adapter_path)).merge_and_unload()


def reference_logits(base_path: str | Path, adapter_path: str | Path, inputs: list[Any]) -> list:
    """Logits of the unmerged base+adapter (LoRA applied on the fly), one tensor per prompt."""
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    base = AutoModelForCausalLM.from_pretrained(base_path)
    model = PeftModel.from_pretrained(base, str(adapter_path)).eval()
    with torch.inference_mode():
        return [model(input_ids=ids).logits for ids in inputs]


def max_logit_diff(merged: Any, reference: list, inputs: list[Any]) -> float:
    import torch

    merged.eval()
    worst = 0.0
    with torch.inference_mode():
        for ids, expected in zip(inputs, reference, strict=True):
            got = merged(input_ids=ids).logits
            worst = max(worst, float((got.float() - expected.float()).abs().max()))
    return worst


def merge_and_verify(
    base_path: str | Path,
    adapter_path: str | Path,
    out: str | Path,
    *,
    atol: float = DEFAULT_ATOL,
    merge: Callable[[Any, Any], Any] | None = None,
) -> MergeResult:
    """Merge, check the logits, and only then save the merged model (and tokenizer) to
    `out`. Raises MergeMismatch, leaving `out` untouched, if the check fails. `merge`
    replaces `merge_lora` (a test passes a broken one)."""
    from transformers import AutoTokenizer

    tokenizer: Any = AutoTokenizer.from_pretrained(adapter_path)
    inputs = [
        tokenizer.apply_chat_template(
            messages, add_generation_prompt=True, return_tensors="pt", return_dict=True
        )["input_ids"]
        for messages in CHECK_PROMPTS
    ]
    reference = reference_logits(base_path, adapter_path, inputs)
    merged = (merge or merge_lora)(base_path, adapter_path)
    diff = max_logit_diff(merged, reference, inputs)
    if not diff <= atol:  # also refuses NaN
        raise MergeMismatch(diff, atol)
    out = Path(out)
    merged.save_pretrained(out, safe_serialization=True)
    tokenizer.save_pretrained(out)
    return MergeResult(folder=out, max_logit_diff=diff)
