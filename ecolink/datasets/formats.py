"""The dataset formats: tell a record's format from its keys, and normalise each format to
the record shapes the trainer reads.

Normalised records (one JSON object per line in the split files):
  {"type": "chat", "messages": [{"role", "content", "weight"?}], "source_format": "<format>"}
  {"type": "text", "text": "..."}
  {"type": "preference", "prompt": [messages], "chosen": [assistant], "rejected": [assistant]}

CSV and Parquet are containers: their rows become dicts and go through the same
normalisers (see `readers.py`), chosen from the columns.
"""

from collections.abc import Callable
from dataclasses import dataclass

from ecolink.datasets.models import Dataset

F = Dataset.Format
ROW_FORMATS = (F.TEXT, F.ALPACA, F.SHAREGPT, F.OPENAI, F.PROMPT_COMPLETION, F.PREFERENCE)
CONTAINERS = (F.CSV, F.PARQUET)
FORMAT_LABELS = dict(F.choices)

CHAT_ROLES = frozenset({"system", "user", "assistant"})
SHAREGPT_ROLES = {
    "human": "user",
    "user": "user",
    "gpt": "assistant",
    "assistant": "assistant",
    "chatgpt": "assistant",
    "system": "system",
}


class RecordError(ValueError):
    """One record (a line or row) is malformed. `kind` groups errors in the report;
    `excerpt` is the start of the raw input, when there is one worth showing."""

    def __init__(self, kind: str, message: str, *, excerpt: str = ""):
        super().__init__(message)
        self.kind = kind
        self.message = message
        self.excerpt = excerpt


@dataclass(frozen=True)
class Mapping:
    """Which keys hold the prompt and the answer of prompt/completion rows."""

    prompt_column: str = ""
    answer_column: str = ""

    @property
    def prompt_key(self) -> str:
        return self.prompt_column or "prompt"

    @property
    def answer_key(self) -> str:
        return self.answer_column or "completion"


def detect_row_format(obj: object, mapping: Mapping = Mapping()) -> str | None:
    """The format a record's keys say it is in, or None when they say nothing known."""
    if not isinstance(obj, dict):
        return None
    if "messages" in obj:
        return F.OPENAI
    if "conversations" in obj:
        return F.SHAREGPT
    if "chosen" in obj and "rejected" in obj:
        return F.PREFERENCE
    if "instruction" in obj and "output" in obj:
        return F.ALPACA
    if mapping.answer_column and mapping.answer_column in obj:
        return F.PROMPT_COMPLETION
    if "prompt" in obj and "completion" in obj:
        return F.PROMPT_COMPLETION
    if "text" in obj:
        return F.TEXT
    return None


def normaliser_for(row_format: str, mapping: Mapping = Mapping(), *, source_format: str = ""):
    """A function turning one parsed record (a dict) into a normalised record, or raising
    RecordError. `source_format` is what chat records say they came from (defaults to
    `row_format`; CSV and Parquet pass their own name)."""
    source = source_format or row_format
    normalisers: dict[str, Callable[[dict], dict]] = {
        F.OPENAI: lambda obj: _openai(obj, source),
        F.SHAREGPT: lambda obj: _sharegpt(obj, source),
        F.ALPACA: lambda obj: _alpaca(obj, source),
        F.PROMPT_COMPLETION: lambda obj: _prompt_completion(obj, mapping, source),
        F.PREFERENCE: _preference,
        F.TEXT: _text_record,
    }
    normalise = normalisers[row_format]

    def checked(obj: object) -> dict:
        if not isinstance(obj, dict):
            raise RecordError("not_object", f"expected a JSON object, found {_type_name(obj)}")
        try:
            return normalise(obj)
        except RecordError as error:
            if error.kind == "missing_field":
                other = detect_row_format(obj, mapping)
                if other is not None and other != row_format:
                    raise RecordError(
                        "mixed_formats",
                        f"this record is {FORMAT_LABELS[other]} but the file is "
                        f"{FORMAT_LABELS[row_format]}: one file must use one format",
                    ) from None
            raise

    return checked


# --- the formats


def _openai(obj: dict, source: str) -> dict:
    messages = _require(obj, "messages")
    if not isinstance(messages, list) or not messages:
        raise RecordError("shape", "'messages' must be a non-empty list of messages")
    out = []
    for i, message in enumerate(messages, 1):
        if type(message) is not dict:
            raise RecordError("shape", f"message {i} must be an object, not {_type_name(message)}")
        role = message.get("role")
        if type(role) is not str or role not in CHAT_ROLES:
            raise RecordError(
                "role", f"message {i} has role {_short(role)}: use system, user or assistant"
            )
        content = message.get("content")
        if type(content) is str and content.isascii() and "weight" not in message:
            out.append({"role": role, "content": content})  # the common case, checked inline
        else:
            out.append(_message(role, content, i, message))
    _check_chat(out)
    return {"type": "chat", "messages": out, "source_format": source}


def _sharegpt(obj: dict, source: str) -> dict:
    turns = _require(obj, "conversations")
    if not isinstance(turns, list) or not turns:
        raise RecordError("shape", "'conversations' must be a non-empty list of turns")
    out = []
    system = obj.get("system")
    if system is not None:
        out.append(_message("system", system, 0, {}))
    for i, turn in enumerate(turns, 1):
        if not isinstance(turn, dict):
            raise RecordError("shape", f"turn {i} must be an object, not {_type_name(turn)}")
        speaker = turn.get("from")
        role = SHAREGPT_ROLES.get(speaker) if isinstance(speaker, str) else None
        if role is None:
            raise RecordError(
                "role", f"turn {i} is from {_short(speaker)}: use human, gpt or system"
            )
        out.append(_message(role, turn.get("value"), i, turn, content_key="value"))
    _check_chat(out)
    return {"type": "chat", "messages": out, "source_format": source}


def _alpaca(obj: dict, source: str) -> dict:
    instruction = _string(_require(obj, "instruction"), "instruction")
    extra = obj.get("input")
    extra = "" if extra is None else _string(extra, "input")
    output = _string(_require(obj, "output"), "output")
    user = f"{instruction}\n\n{extra}" if extra.strip() else instruction
    messages = []
    if obj.get("system"):
        messages.append({"role": "system", "content": _string(obj["system"], "system")})
    messages += [{"role": "user", "content": user}, {"role": "assistant", "content": output}]
    _check_chat(messages)
    return {"type": "chat", "messages": messages, "source_format": source}


def _prompt_completion(obj: dict, mapping: Mapping, source: str) -> dict:
    prompt = _string(_require(obj, mapping.prompt_key), mapping.prompt_key)
    answer = _string(_require(obj, mapping.answer_key), mapping.answer_key)
    messages = [{"role": "user", "content": prompt}, {"role": "assistant", "content": answer}]
    _check_chat(messages)
    return {"type": "chat", "messages": messages, "source_format": source}


def _text_record(obj: dict) -> dict:
    text = _string(_require(obj, "text"), "text")
    if not text.strip():
        raise RecordError("empty_turn", "'text' is empty")
    return {"type": "text", "text": text}


def _preference(obj: dict) -> dict:
    chosen, rejected = _require(obj, "chosen"), _require(obj, "rejected")
    prompt = obj.get("prompt")
    if prompt is None and isinstance(chosen, list) and isinstance(rejected, list):
        # The "implicit prompt" layout: both sides repeat the conversation so far.
        shared = 0
        while (
            shared < min(len(chosen), len(rejected)) - 1
            and chosen[shared] == rejected[shared]
            and isinstance(chosen[shared], dict)
            and chosen[shared].get("role") != "assistant"
        ):
            shared += 1
        prompt, chosen, rejected = chosen[:shared], chosen[shared:], rejected[shared:]
    if prompt is None:
        raise RecordError("missing_field", "missing 'prompt'")

    if isinstance(prompt, str):
        prompt_messages = [_message("user", prompt, 1, {})]
    elif isinstance(prompt, list) and prompt:
        prompt_messages = _message_list(prompt, "prompt")
    else:
        raise RecordError("shape", "'prompt' must be a string or a non-empty list of messages")
    if prompt_messages[-1]["role"] != "user":
        raise RecordError("role_order", "the prompt must end with a user turn")
    _check_chat([*prompt_messages, {"role": "assistant", "content": "-"}])

    record = {"type": "preference", "prompt": prompt_messages}
    for side, value in (("chosen", chosen), ("rejected", rejected)):
        if isinstance(value, str):
            answer = [_message("assistant", value, 1, {})]
        elif isinstance(value, list) and value:
            answer = _message_list(value, side)
        else:
            raise RecordError("shape", f"'{side}' must be a string or a non-empty list of messages")
        for i, message in enumerate(answer, 1):
            if message["role"] != "assistant":
                raise RecordError("role", f"'{side}' message {i} must be from the assistant")
            if not message["content"].strip():
                raise RecordError("empty_turn", f"'{side}' message {i} is empty")
        record[side] = [{"role": "assistant", "content": m["content"]} for m in answer]
    return record


# --- shared checks


def _check_chat(messages: list[dict]) -> None:
    """An optional system turn, then user and assistant alternating, ending with the
    assistant; no empty turns."""
    expected = "user"
    for i, message in enumerate(messages, 1):
        role, content = message["role"], message["content"]
        if not content or content.isspace():
            raise RecordError("empty_turn", f"message {i} ({role}) is empty")
        if role == "system" and i == 1:
            continue
        if role != expected:
            hint = (
                "a system turn may only come first"
                if role == "system"
                else "turns must alternate user, assistant after an optional system turn"
            )
            raise RecordError(
                "role_order", f"message {i} is from {role}, expected {expected}: {hint}"
            )
        expected = "assistant" if expected == "user" else "user"
    if messages[-1]["role"] != "assistant":
        raise RecordError("role_order", "the conversation must end with an assistant turn")


def _message(role: str, content: object, i: int, raw: dict, *, content_key="content") -> dict:
    if not isinstance(content, str):
        where = f"message {i} " if i else ""
        raise RecordError(
            "type", f"{where}'{content_key}' must be a string, not {_type_name(content)}"
        )
    if not content.isascii():
        _check_encodable(content, content_key)
    message: dict[str, object] = {"role": role, "content": content}
    if "weight" in raw:
        weight = raw["weight"]
        if role != "assistant":
            raise RecordError("weight", f"message {i}: 'weight' is only allowed on assistant turns")
        if type(weight) is not int or weight not in (0, 1):
            raise RecordError(
                "weight", f"message {i}: 'weight' must be 0 or 1, not {_short(weight)}"
            )
        message["weight"] = weight
    return message


def _message_list(items: list, field: str) -> list[dict]:
    out = []
    for i, item in enumerate(items, 1):
        if not isinstance(item, dict):
            raise RecordError("shape", f"'{field}' item {i} must be a message object")
        role = item.get("role")
        if type(role) is not str or role not in CHAT_ROLES:
            raise RecordError("role", f"'{field}' message {i} has role {_short(role)}")
        out.append(_message(role, item.get("content"), i, {}))
    return out


def _require(obj: dict, key: str):
    try:
        return obj[key]
    except KeyError:
        raise RecordError("missing_field", f"missing '{key}'") from None


def _string(value: object, field: str) -> str:
    if not isinstance(value, str):
        raise RecordError("type", f"'{field}' must be a string, not {_type_name(value)}")
    if not value.isascii():
        _check_encodable(value, field)
    return value


def _check_encodable(value: str, field: str) -> None:
    # JSON may escape half of a surrogate pair ("\ud800"): not text any tokenizer can take.
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise RecordError(
            "encoding", f"'{field}' holds an invalid \\u escape (half a surrogate pair)"
        ) from None


def _type_name(value: object) -> str:
    return {
        dict: "an object",
        list: "a list",
        str: "a string",
        bool: "a boolean",
        int: "a number",
        float: "a number",
        type(None): "null",
    }.get(type(value), type(value).__name__)


def _short(value: object, limit: int = 40) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"
