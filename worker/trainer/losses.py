"""Losses on a packed micro-batch: summed token cross-entropy for SFT (the caller divides
by the step's token count), per-sequence log-probabilities and the DPO loss.

Logits are computed only where a target exists (`logits_to_keep` with a boolean mask),
which skips the vocabulary projection for prompts and padding.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from worker.trainer.batching import Batch
from worker.trainer.data import IGNORE


def target_logits(model: Any, batch: Batch, *, virtual_tokens: int = 0) -> torch.Tensor:
    """Logits at every position that has a target, in row-major order: [num_targets, vocab].

    `virtual_tokens` is the soft-prompt length that prompt tuning puts in front of each row."""
    keep = batch.targets != IGNORE
    if virtual_tokens:
        prefix = torch.zeros(keep.shape[0], virtual_tokens, dtype=torch.bool, device=keep.device)
        keep = torch.cat([prefix, keep], dim=1)
    kwargs: dict[str, Any] = {"input_ids": batch.input_ids, "use_cache": False}
    if batch.position_ids is not None:
        kwargs["position_ids"] = batch.position_ids
    if batch.attention_mask is not None:
        kwargs["attention_mask"] = batch.attention_mask
    return model(**kwargs, logits_to_keep=keep).logits


def token_logps(model: Any, batch: Batch, *, virtual_tokens: int = 0) -> torch.Tensor:
    """log p(target) at every position that has a target: [num_targets], float32."""
    logits = target_logits(model, batch, virtual_tokens=virtual_tokens).float()
    targets = batch.targets[batch.targets != IGNORE]
    return -F.cross_entropy(logits, targets, reduction="none")


def sft_loss_sum(model: Any, batch: Batch, *, virtual_tokens: int = 0) -> torch.Tensor:
    """Summed cross-entropy over the batch's targets (not averaged)."""
    return -token_logps(model, batch, virtual_tokens=virtual_tokens).sum()


def sequence_logps(model: Any, batch: Batch, *, virtual_tokens: int = 0) -> torch.Tensor:
    """Summed target log-probabilities of each sequence: [num_sequences]."""
    logps = token_logps(model, batch, virtual_tokens=virtual_tokens)
    owners = batch.seq_index[batch.targets != IGNORE]
    out = torch.zeros(batch.num_sequences, dtype=logps.dtype, device=logps.device)
    return out.index_add(0, owners, logps)


def dpo_loss(
    policy: torch.Tensor, reference: torch.Tensor, *, beta: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-pair DPO loss and reward margin from sequence log-probs laid out as
    chosen0, rejected0, chosen1, rejected1, ..."""
    chosen = beta * (policy[0::2] - reference[0::2])
    rejected = beta * (policy[1::2] - reference[1::2])
    margin = chosen - rejected
    return -F.logsigmoid(margin), margin.detach()
