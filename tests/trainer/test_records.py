"""Reading the platform's normalised dataset records."""

import json

import pytest

from worker.trainer.records import (
    ChatRecord,
    DataError,
    PreferenceRecord,
    TextRecord,
    read_records,
)


def write(tmp_path, *rows):
    path = tmp_path / "data.jsonl"
    path.write_text("\n".join(r if isinstance(r, str) else json.dumps(r) for r in rows) + "\n")
    return path


def test_reads_chat_text_and_preference_records(tmp_path):
    path = write(
        tmp_path,
        {
            "type": "chat",
            "messages": [
                {"role": "user", "content": "hi"},
                {"role": "assistant", "content": "a", "weight": 0},
                {"role": "user", "content": "again"},
                {"role": "assistant", "content": "b"},
            ],
            "source_format": "sharegpt",
        },
        "",
        {"type": "text", "text": "plain words"},
        {
            "type": "preference",
            "prompt": [{"role": "user", "content": "q"}],
            "chosen": [{"role": "assistant", "content": "good"}],
            "rejected": [{"role": "assistant", "content": "bad"}],
        },
    )
    chat, text, pref = read_records(path)
    assert isinstance(chat, ChatRecord) and chat.source_format == "sharegpt"
    assert [m["weight"] for m in chat.messages] == [1, 0, 1, 1]
    assert isinstance(text, TextRecord) and text.text == "plain words"
    assert isinstance(pref, PreferenceRecord) and pref.chosen[0]["content"] == "good"


@pytest.mark.parametrize(
    ("row", "message"),
    [
        ("{oops", "not valid JSON"),
        ({"type": "image"}, "type must be 'chat', 'text' or 'preference'"),
        ({"type": "chat", "messages": []}, "messages must be a non-empty list"),
        ({"type": "chat", "messages": [{"role": "bot", "content": "x"}]}, "role must be one of"),
        ({"type": "chat", "messages": [{"role": "user", "content": 3}]}, "content must be a str"),
        (
            {"type": "chat", "messages": [{"role": "user", "content": "x", "weight": 0}]},
            "weight is only allowed on assistant turns",
        ),
        (
            {"type": "chat", "messages": [{"role": "assistant", "content": "x", "weight": 2}]},
            "weight must be 0 or 1",
        ),
        ({"type": "text", "text": ""}, "text must be a non-empty string"),
        ({"type": "text", "text": "x", "extra": 1}, "unknown key 'extra'"),
        (
            {
                "type": "preference",
                "prompt": [{"role": "user", "content": "q"}],
                "chosen": [{"role": "user", "content": "x"}],
                "rejected": [{"role": "assistant", "content": "y"}],
            },
            "chosen must hold assistant messages only",
        ),
    ],
)
def test_a_bad_record_names_file_and_line(tmp_path, row, message):
    path = write(tmp_path, {"type": "text", "text": "fine"}, row)
    with pytest.raises(DataError) as caught:
        read_records(path)
    assert f"{path}:2: " in str(caught.value)
    assert message in str(caught.value)


def test_an_empty_or_missing_file_is_a_data_error(tmp_path):
    empty = tmp_path / "empty.jsonl"
    empty.write_text("\n\n")
    with pytest.raises(DataError, match="no records"):
        read_records(empty)
    with pytest.raises(DataError, match="cannot read"):
        read_records(tmp_path / "nope.jsonl")
