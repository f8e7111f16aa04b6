"""Dataset records: the normalised JSONL shape that the platform's dataset validator writes
and the trainer reads. One JSON object per line (blank lines are skipped):

Chat (also instruction data, already converted to user/assistant turns)::

    {"type": "chat",
     "messages": [{"role": "system" | "user" | "assistant", "content": str,
                   "weight": 0 | 1}],     # weight: optional, assistant turns only;
                                          # 0 = do not train on this turn
     "source_format": "openai" | "sharegpt" | "alpaca" | "prompt_completion" | "csv" | ...}

Plain text::

    {"type": "text", "text": str}

Preference pair (DPO)::

    {"type": "preference",
     "prompt": [messages],                 # the conversation so far (any roles)
     "chosen": [assistant messages],       # the preferred reply
     "rejected": [assistant messages]}     # the dispreferred reply

`source_format` says where a chat record came from; with `train_on_inputs: auto` chat
and instruction data alike train on the assistant turns only, plain text on everything.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROLES = ("system", "user", "assistant")


class DataError(ValueError):
    """The dataset cannot be trained on; the message names the file and line."""


@dataclass(frozen=True)
class ChatRecord:
    messages: tuple[dict[str, Any], ...]
    source_format: str = "openai"


@dataclass(frozen=True)
class TextRecord:
    text: str


@dataclass(frozen=True)
class PreferenceRecord:
    prompt: tuple[dict[str, Any], ...]
    chosen: tuple[dict[str, Any], ...]
    rejected: tuple[dict[str, Any], ...]


Record = ChatRecord | TextRecord | PreferenceRecord


def read_records(path: str | Path) -> list[Record]:
    """Read and check every record of a JSONL file; raise DataError at the first bad line."""
    path = Path(path)
    try:
        handle = path.open(encoding="utf-8")
    except OSError as exc:
        raise DataError(f"{path}: cannot read: {exc.strerror}") from exc
    records: list[Record] = []
    with handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                records.append(parse_record(json.loads(line)))
            except json.JSONDecodeError as exc:
                raise DataError(f"{path}:{number}: not valid JSON: {exc.msg}") from exc
            except DataError as exc:
                raise DataError(f"{path}:{number}: {exc}") from exc
    if not records:
        raise DataError(f"{path}: no records")
    return records


def parse_record(obj: Any) -> Record:
    if not isinstance(obj, dict):
        raise DataError("a record must be a JSON object")
    kind = obj.get("type")
    if kind == "chat":
        _only_keys(obj, {"type", "messages", "source_format"})
        messages = _messages(obj.get("messages"), "messages")
        source_format = obj.get("source_format", "openai")
        if not isinstance(source_format, str):
            raise DataError("source_format must be a string")
        return ChatRecord(messages=messages, source_format=source_format)
    if kind == "text":
        _only_keys(obj, {"type", "text"})
        text = obj.get("text")
        if not isinstance(text, str) or not text:
            raise DataError("text must be a non-empty string")
        return TextRecord(text=text)
    if kind == "preference":
        _only_keys(obj, {"type", "prompt", "chosen", "rejected"})
        prompt = _messages(obj.get("prompt"), "prompt")
        replies = {}
        for key in ("chosen", "rejected"):
            replies[key] = _messages(obj.get(key), key)
            if any(m["role"] != "assistant" for m in replies[key]):
                raise DataError(f"{key} must hold assistant messages only")
        return PreferenceRecord(prompt=prompt, **replies)
    raise DataError(f"type must be 'chat', 'text' or 'preference', got {kind!r}")


def _only_keys(obj: dict[str, Any], allowed: set[str]) -> None:
    unknown = sorted(set(obj) - allowed)
    if unknown:
        raise DataError(f"unknown key {unknown[0]!r} in a {obj['type']} record")


def _messages(value: Any, key: str) -> tuple[dict[str, Any], ...]:
    if not isinstance(value, list) or not value:
        raise DataError(f"{key} must be a non-empty list of messages")
    out = []
    for i, message in enumerate(value):
        where = f"{key}[{i}]"
        if not isinstance(message, dict):
            raise DataError(f"{where} must be an object")
        unknown = sorted(set(message) - {"role", "content", "weight"})
        if unknown:
            raise DataError(f"{where} has an unknown key {unknown[0]!r}")
        role, content = message.get("role"), message.get("content")
        if role not in ROLES:
            raise DataError(f"{where}.role must be one of {', '.join(ROLES)}, got {role!r}")
        if not isinstance(content, str):
            raise DataError(f"{where}.content must be a string")
        weight = message.get("weight", 1)
        if "weight" in message and role != "assistant":
            raise DataError(f"{where}.weight is only allowed on assistant turns")
        if weight not in (0, 1) or isinstance(weight, bool):
            raise DataError(f"{where}.weight must be 0 or 1, got {weight!r}")
        out.append({"role": role, "content": content, "weight": weight})
    return tuple(out)
