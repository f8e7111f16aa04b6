"""Which examples go into each optimizer step, how a step splits into micro-batches, and
how a micro-batch becomes tensors without spending compute on padding.

An optimizer step takes exactly `effective_batch_size` examples, split evenly over the
ranks; each rank's share runs as `accum` micro-batches of `micro` examples, with
micro x accum x world size = effective batch size exactly. Micro-batches are packed:
their examples are laid out first-fit-decreasing in rows of at most `max_seq_length`
tokens, with position ids restarting at every example, so that the model's attention
mask keeps examples apart (transformers builds a block-diagonal mask from them when no
2D attention mask is given).
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any

import torch

from worker.trainer.data import IGNORE, PreferencePair, Sequence


def epoch_order(n: int, seed: int, epoch: int) -> list[int]:
    """A fixed shuffle per (seed, epoch): the data position is just the step number."""
    order = list(range(n))
    random.Random(f"ecolink:{seed}:{epoch}").shuffle(order)
    return order


def step_items(items: list[Any], *, step: int, effective: int, seed: int) -> list[Any]:
    """The examples of optimizer step `step` (0-based); the tail of an epoch that cannot
    fill a whole step is left out, so every step has exactly `effective` examples."""
    per_epoch = len(items) // effective
    epoch, index = divmod(step, per_epoch)
    order = epoch_order(len(items), seed, epoch)
    return [items[i] for i in order[index * effective : (index + 1) * effective]]


def rank_share(items: list[Any], rank: int, world_size: int) -> list[Any]:
    return items[rank::world_size]


def micro_batches(items: list[Any], micro: int) -> list[list[Any]]:
    """Cut one rank's share into micro-batches, longest examples together: the loss is
    normalised over the whole step, so grouping by length changes no gradient, only the
    padding and packing waste."""
    ordered = sorted(items, key=len, reverse=True)
    return [ordered[i : i + micro] for i in range(0, len(ordered), micro)]


def flatten(items: list[Any]) -> list[Sequence]:
    """SFT items as they are; DPO pairs as chosen0, rejected0, chosen1, rejected1, ..."""
    if items and isinstance(items[0], PreferencePair):
        return [seq for pair in items for seq in (pair.chosen, pair.rejected)]
    return list(items)


@dataclass
class Batch:
    input_ids: torch.Tensor  # [rows, length]
    targets: torch.Tensor  # [rows, length], IGNORE where no loss
    seq_index: torch.Tensor  # [rows, length], which sequence a token belongs to, -1 for pad
    position_ids: torch.Tensor | None  # packed rows: restarts at every sequence
    attention_mask: torch.Tensor | None  # padded rows only
    num_sequences: int
    num_tokens: int  # real (non-pad) tokens

    @property
    def num_targets(self) -> int:
        return int((self.targets != IGNORE).sum())

    def to(self, device: torch.device | str) -> Batch:
        def move(t: torch.Tensor | None) -> torch.Tensor | None:
            return None if t is None else t.to(device, non_blocking=True)

        return Batch(
            input_ids=move(self.input_ids),
            targets=move(self.targets),
            seq_index=move(self.seq_index),
            position_ids=move(self.position_ids),
            attention_mask=move(self.attention_mask),
            num_sequences=self.num_sequences,
            num_tokens=self.num_tokens,
        )


def pack_rows(lengths: list[int], capacity: int) -> list[list[int]]:
    """First-fit decreasing: indices of `lengths` grouped in rows of at most `capacity`."""
    rows: list[list[int]] = []
    room: list[int] = []
    for i in sorted(range(len(lengths)), key=lambda i: -lengths[i]):
        for r, free in enumerate(room):
            if lengths[i] <= free:
                rows[r].append(i)
                room[r] -= lengths[i]
                break
        else:
            rows.append([i])
            room.append(capacity - lengths[i])
    return rows


def collate(seqs: list[Sequence], *, pack: bool, capacity: int, pad_id: int) -> Batch:
    """Tensors for one micro-batch: packed rows (no 2D mask, position ids restart per
    example) or one right-padded row per example with an attention mask."""
    lengths = [len(s) for s in seqs]
    layout = pack_rows(lengths, capacity) if pack else [[i] for i in range(len(seqs))]
    width = max(sum(lengths[i] for i in row) for row in layout)
    shape = (len(layout), width)
    input_ids = torch.full(shape, pad_id, dtype=torch.long)
    targets = torch.full(shape, IGNORE, dtype=torch.long)
    seq_index = torch.full(shape, -1, dtype=torch.long)
    positions = torch.zeros(shape, dtype=torch.long)
    for r, row in enumerate(layout):
        at = 0
        for i in row:
            n = lengths[i]
            input_ids[r, at : at + n] = torch.tensor(seqs[i].input_ids)
            targets[r, at : at + n] = torch.tensor(seqs[i].targets)
            seq_index[r, at : at + n] = i
            positions[r, at : at + n] = torch.arange(n)
            at += n
        positions[r, at:] = torch.arange(width - at)  # padding is a segment of its own
    return Batch(
        input_ids=input_ids,
        targets=targets,
        seq_index=seq_index,
        position_ids=positions if pack else None,
        attention_mask=None if pack else (seq_index >= 0).long(),
        num_sequences=len(seqs),
        num_tokens=sum(lengths),
    )
