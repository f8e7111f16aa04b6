"""From records to token sequences: chat templating, which tokens carry loss, truncation.

A `Sequence` stores next-token targets already shifted inside the example
(`targets[i]` is the token that follows position `i`, or IGNORE), so packed examples never
predict their neighbour's first token and the loss needs no shift across row boundaries.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from typing import Any

from worker.trainer.chat_template import CHATML_TEMPLATE
from worker.trainer.records import ChatRecord, DataError, PreferenceRecord, Record, TextRecord

log = logging.getLogger(__name__)

IGNORE = -100

_GENERATION_TAG = re.compile(r"\{%-?\s*generation\s*-?%\}")


@dataclass
class Sequence:
    """One tokenised example; `targets[i]` is the token to predict after position i."""

    input_ids: list[int]
    targets: list[int]

    def __len__(self) -> int:
        return len(self.input_ids)

    @property
    def num_targets(self) -> int:
        return sum(t != IGNORE for t in self.targets)


@dataclass
class PreferencePair:
    chosen: Sequence
    rejected: Sequence

    def __len__(self) -> int:
        return len(self.chosen) + len(self.rejected)


@dataclass
class TokenizedData:
    """The trainable items of one split, and what was cut or dropped on the way."""

    items: list[Any] = field(default_factory=list)  # Sequence (SFT) or PreferencePair (DPO)
    records: int = 0
    truncated: int = 0  # examples cut at max_seq_length (still trained if anything is left)
    dropped: int = 0  # examples with no token left to learn from

    @property
    def tokens(self) -> int:
        return sum(len(item) for item in self.items)

    def stats(self) -> dict[str, int]:
        return {
            "records": self.records,
            "examples": len(self.items),
            "truncated_examples": self.truncated,
            "dropped_examples": self.dropped,
            "tokens": self.tokens,
        }


class ChatRenderer:
    """Renders a conversation with the tokenizer's chat template and tells, for every
    token, which assistant turn it belongs to (-1 for system/user/template tokens)."""

    def __init__(self, tokenizer: Any) -> None:
        if not tokenizer.chat_template:
            tokenizer.chat_template = CHATML_TEMPLATE
        self.tokenizer = tokenizer
        self.has_generation_tags = bool(_GENERATION_TAG.search(tokenizer.chat_template))

    def render(self, messages: list[dict[str, Any]]) -> tuple[list[int], list[int]]:
        conversation = [{"role": m["role"], "content": m["content"]} for m in messages]
        assistant_turns = [i for i, m in enumerate(conversation) if m["role"] == "assistant"]
        if self.has_generation_tags:
            rendered = self.tokenizer.apply_chat_template(
                conversation,
                tokenize=True,
                return_dict=True,
                return_assistant_tokens_mask=True,
            )
            ids, mask = list(rendered["input_ids"]), list(rendered["assistant_masks"])
            turn_of_token, spans = _spans_to_turns(mask, assistant_turns)
            if spans == len(assistant_turns):
                return ids, turn_of_token
        return self._render_by_offsets(conversation, assistant_turns)

    def _render_by_offsets(
        self, conversation: list[dict[str, str]], assistant_turns: list[int]
    ) -> tuple[list[int], list[int]]:
        """For templates without generation tags: find each reply's characters by rendering
        the conversation up to it, then map characters to tokens through offsets."""
        template = self.tokenizer.apply_chat_template
        text = template(conversation, tokenize=False)
        encoded = self.tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
        char_spans = []
        for turn in assistant_turns:
            before = template(conversation[:turn], tokenize=False, add_generation_prompt=True)
            upto = template(conversation[: turn + 1], tokenize=False)
            if not (text.startswith(upto) and upto.startswith(before)):
                raise DataError(
                    "the base model's chat template renders turns differently depending on "
                    "what follows, so assistant tokens cannot be located"
                )
            char_spans.append((len(before), len(upto), turn))
        turn_of_token = []
        for start, _end in encoded["offset_mapping"]:
            owner = next((t for lo, hi, t in char_spans if lo <= start < hi), -1)
            turn_of_token.append(owner)
        return list(encoded["input_ids"]), turn_of_token


def _spans_to_turns(mask: list[int], assistant_turns: list[int]) -> tuple[list[int], int]:
    """Number the contiguous runs of 1 in `mask` and map the k-th run to the k-th turn."""
    turn_of_token, run, inside = [], -1, False
    for bit in mask:
        if bit and not inside:
            run += 1
        inside = bool(bit)
        owner = assistant_turns[run] if bit and run < len(assistant_turns) else -1
        turn_of_token.append(owner)
    return turn_of_token, run + 1


def tokenize(
    records: list[Record],
    tokenizer: Any,
    *,
    objective: str,
    train_on_inputs: str,
    max_seq_length: int,
) -> TokenizedData:
    """Turn records into trainable items; raise DataError when records and objective clash."""
    renderer = ChatRenderer(tokenizer)
    out = TokenizedData(records=len(records))
    for number, record in enumerate(records, start=1):
        if objective == "dpo":
            if not isinstance(record, PreferenceRecord):
                raise DataError(f"record {number}: objective 'dpo' needs preference records")
            pair = [
                _chat_sequence(
                    renderer,
                    [{**m, "weight": 0} for m in record.prompt] + list(reply),
                    mask_prompts=True,
                )
                for reply in (record.chosen, record.rejected)
            ]
            cut = [_truncate(seq, max_seq_length) for seq in pair]
            out.truncated += any(was_cut for _seq, was_cut in cut)
            chosen, rejected = (seq for seq, _ in cut)
            if chosen.num_targets and rejected.num_targets:
                out.items.append(PreferencePair(chosen, rejected))
            else:
                out.dropped += 1
            continue
        if isinstance(record, PreferenceRecord):
            raise DataError(f"record {number}: preference records need objective 'dpo'")
        if isinstance(record, ChatRecord):
            seq = _chat_sequence(
                renderer, list(record.messages), mask_prompts=train_on_inputs != "true"
            )
        else:
            seq = _text_sequence(tokenizer, record)
        seq, was_cut = _truncate(seq, max_seq_length)
        out.truncated += was_cut
        if seq.num_targets:
            out.items.append(seq)
        else:
            out.dropped += 1
    if out.truncated:
        log.warning(
            "%d of %d examples truncated to %d tokens", out.truncated, len(records), max_seq_length
        )
    if out.dropped:
        log.warning("%d examples dropped: nothing left to train on", out.dropped)
    return out


def _chat_sequence(
    renderer: ChatRenderer, messages: list[dict[str, Any]], *, mask_prompts: bool
) -> Sequence:
    ids, turn_of_token = renderer.render(messages)
    weights = [m.get("weight", 1) for m in messages]
    trainable = []
    for turn in turn_of_token:
        if turn < 0:
            trainable.append(not mask_prompts)
        else:
            trainable.append(weights[turn] == 1)  # weight 0 turns never carry loss
    return _shifted(ids, trainable)


def _text_sequence(tokenizer: Any, record: TextRecord) -> Sequence:
    ids = list(tokenizer(record.text, add_special_tokens=True)["input_ids"])
    if tokenizer.eos_token_id is not None and (not ids or ids[-1] != tokenizer.eos_token_id):
        ids.append(tokenizer.eos_token_id)
    return _shifted(ids, [True] * len(ids))


def _shifted(ids: list[int], trainable: list[bool]) -> Sequence:
    targets = [ids[i + 1] if trainable[i + 1] else IGNORE for i in range(len(ids) - 1)]
    return Sequence(input_ids=ids, targets=[*targets, IGNORE])


def _truncate(seq: Sequence, max_len: int) -> tuple[Sequence, bool]:
    if len(seq) <= max_len:
        return seq, False
    targets = seq.targets[:max_len]
    targets[-1] = IGNORE  # its target lies beyond the cut
    return Sequence(seq.input_ids[:max_len], targets), True
