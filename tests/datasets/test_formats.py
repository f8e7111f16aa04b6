"""Each format: a good file is accepted and normalised to the trainer's record shapes; a
broken one is rejected with the line (or row) number of the broken record."""

import json

import pytest

from ecolink.datasets.models import Dataset
from tests.datasets.builders import (
    csv_bytes,
    errors_of,
    jsonl,
    parquet_bytes,
    read_split,
    rows_of,
    validated,
)

F = Dataset.Format
S = Dataset.Status
BROKEN_AT = 57  # 1-based line of the broken record


def broken(format: str) -> list[dict]:
    rows = rows_of(format)
    bad = {
        F.OPENAI: {
            "messages": [{"role": "assistant", "content": "hi"}, {"role": "user", "content": "x"}]
        },
        F.SHAREGPT: {"conversations": [{"from": "robot", "value": "beep"}]},
        F.ALPACA: {"instruction": "Do it", "input": ""},
        F.PROMPT_COMPLETION: {"prompt": "Q?", "completion": ["not", "text"]},
        F.PREFERENCE: {"prompt": "Q?", "chosen": "", "rejected": "no"},
        F.TEXT: {"text": "   "},
    }[format]
    rows[BROKEN_AT - 1] = bad
    return rows


JSON_FORMATS = [F.OPENAI, F.SHAREGPT, F.ALPACA, F.PROMPT_COMPLETION, F.PREFERENCE, F.TEXT]


@pytest.mark.parametrize("format", JSON_FORMATS)
def test_a_good_jsonl_file_is_detected_and_ready(org, format):
    dataset = validated(org, jsonl(rows_of(format)))
    assert dataset.status == S.READY, dataset.report["errors"]
    assert dataset.format == format
    assert dataset.example_count == 120
    assert dataset.token_count > 0
    assert dataset.is_preference == (format == F.PREFERENCE)
    assert len(dataset.content_hash) == 64


@pytest.mark.parametrize("format", JSON_FORMATS)
def test_a_broken_jsonl_record_is_rejected_with_its_line_number(org, format):
    dataset = validated(org, jsonl(broken(format)))
    assert dataset.status == S.INVALID
    assert [number for number, _ in errors_of(dataset)] == [BROKEN_AT]
    assert f"line {BROKEN_AT}" in dataset.error
    assert not dataset.train_file


@pytest.mark.parametrize("format", JSON_FORMATS)
def test_the_format_can_be_chosen_instead_of_detected(org, format):
    dataset = validated(org, jsonl(rows_of(format)), format=format)
    assert dataset.status == S.READY
    assert dataset.format == format


def test_choosing_the_wrong_format_rejects_every_record(org):
    dataset = validated(org, jsonl(rows_of(F.OPENAI)), format=F.ALPACA)
    assert dataset.status == S.INVALID
    assert dataset.report["error_total"] == 120
    assert dataset.report["errors"][0]["kind"] == "mixed_formats"
    assert len(dataset.report["errors"]) == 50
    assert dataset.report["errors_not_listed"] == 70


def test_openai_chat_keeps_weights_and_records_its_source(org):
    rows = rows_of(F.OPENAI)
    rows[0]["messages"].extend(
        [{"role": "user", "content": "More?"}, {"role": "assistant", "content": "No.", "weight": 0}]
    )
    dataset = validated(org, jsonl(rows), split_seed=3)
    records = [r for split in ("train", "validation", "test") for r in read_split(dataset, split)]
    weighted = next(r for r in records if len(r["messages"]) == 5)
    assert weighted == {
        "type": "chat",
        "messages": [
            {"role": "system", "content": "You are terse."},
            {"role": "user", "content": rows[0]["messages"][1]["content"]},
            {"role": "assistant", "content": rows[0]["messages"][2]["content"]},
            {"role": "user", "content": "More?"},
            {"role": "assistant", "content": "No.", "weight": 0},
        ],
        "source_format": "openai",
    }


def test_sharegpt_speakers_map_to_chat_roles(org):
    rows = rows_of(F.SHAREGPT)
    rows[0] = {
        "conversations": [
            {"from": "system", "value": "Be nice."},
            {"from": "human", "value": "Hi"},
            {"from": "gpt", "value": "Hello"},
        ]
    }
    dataset = validated(org, jsonl(rows))
    first = dataset.report["preview"][0]["record"]
    assert first == {
        "type": "chat",
        "messages": [
            {"role": "system", "content": "Be nice."},
            {"role": "user", "content": "Hi"},
            {"role": "assistant", "content": "Hello"},
        ],
        "source_format": "sharegpt",
    }


def test_alpaca_joins_instruction_and_input_into_the_user_turn(org):
    rows = rows_of(F.ALPACA)
    dataset = validated(org, jsonl(rows))
    without_input, with_input = (p["record"]["messages"] for p in dataset.report["preview"][:2])
    assert without_input[0] == {"role": "user", "content": rows[0]["instruction"]}
    assert with_input[0]["content"] == rows[1]["instruction"] + "\n\nbriefly"
    assert with_input[1]["role"] == "assistant"
    assert dataset.report["preview"][0]["record"]["source_format"] == "alpaca"


def test_prompt_completion_columns_can_be_mapped(org):
    rows = [
        {"question": r["prompt"], "answer": r["completion"]} for r in rows_of(F.PROMPT_COMPLETION)
    ]
    unmapped = validated(org, jsonl(rows))
    assert unmapped.status == S.INVALID
    assert "Could not tell the format" in unmapped.error

    dataset = validated(org, jsonl(rows), prompt_column="question", answer_column="answer")
    assert dataset.status == S.READY
    assert dataset.format == F.PROMPT_COMPLETION
    assert dataset.report["preview"][0]["record"]["messages"] == [
        {"role": "user", "content": rows[0]["question"]},
        {"role": "assistant", "content": rows[0]["answer"]},
    ]


def test_preference_pairs_accept_plain_strings_and_chat_lists(org):
    rows = rows_of(F.PREFERENCE)
    rows[1] = {
        "prompt": [{"role": "system", "content": "Be kind."}, {"role": "user", "content": "Hi?"}],
        "chosen": [{"role": "assistant", "content": "Hello!"}],
        "rejected": [{"role": "assistant", "content": "Go away."}],
    }
    rows[2] = {  # the "implicit prompt" layout: both sides repeat the conversation
        "chosen": [{"role": "user", "content": "2+2?"}, {"role": "assistant", "content": "4"}],
        "rejected": [{"role": "user", "content": "2+2?"}, {"role": "assistant", "content": "5"}],
    }
    dataset = validated(org, jsonl(rows))
    assert dataset.status == S.READY, dataset.report["errors"]
    plain, chat, implicit = (p["record"] for p in dataset.report["preview"][:3])
    assert plain == {
        "type": "preference",
        "prompt": [{"role": "user", "content": rows_of(F.PREFERENCE)[0]["prompt"]}],
        "chosen": [{"role": "assistant", "content": rows_of(F.PREFERENCE)[0]["chosen"]}],
        "rejected": [{"role": "assistant", "content": rows_of(F.PREFERENCE)[0]["rejected"]}],
    }
    assert chat["prompt"][0] == {"role": "system", "content": "Be kind."}
    assert implicit["prompt"] == [{"role": "user", "content": "2+2?"}]
    assert implicit["rejected"] == [{"role": "assistant", "content": "5"}]


def test_text_records_stay_text(org):
    dataset = validated(org, jsonl(rows_of(F.TEXT)))
    assert read_split(dataset, "train")[0].keys() == {"type", "text"}


# --- CSV


def test_a_good_csv_file_is_read_through_its_columns(org):
    content = csv_bytes(rows_of(F.PROMPT_COMPLETION), ["prompt", "completion"])
    dataset = validated(org, content, "qa.csv")
    assert dataset.status == S.READY, dataset.report["errors"]
    assert dataset.format == F.CSV
    assert dataset.example_count == 120
    record = dataset.report["preview"][0]["record"]
    assert record["type"] == "chat"
    assert record["source_format"] == "csv"


def test_csv_columns_can_be_mapped(org):
    rows = [{"q": r["prompt"], "a": r["completion"]} for r in rows_of(F.PROMPT_COMPLETION)]
    dataset = validated(
        org, csv_bytes(rows, ["q", "a"]), "qa.csv", prompt_column="q", answer_column="a"
    )
    assert dataset.status == S.READY


def test_csv_mapping_to_a_missing_column_names_the_columns_there_are(org):
    content = csv_bytes(rows_of(F.PROMPT_COMPLETION), ["prompt", "completion"])
    dataset = validated(org, content, "qa.csv", prompt_column="question", answer_column="answer")
    assert dataset.status == S.INVALID
    assert "'question', 'answer' not found" in dataset.error
    assert "'prompt', 'completion'" in dataset.error


def test_a_broken_csv_row_is_rejected_with_its_row_number(org):
    content = csv_bytes(rows_of(F.PROMPT_COMPLETION), ["prompt", "completion"]).splitlines(True)
    # The header is row 1, so data row BROKEN_AT - 1 is spreadsheet row BROKEN_AT.
    content[BROKEN_AT - 1] = b'"only one field"\r\n'
    dataset = validated(org, b"".join(content), "qa.csv")
    assert dataset.status == S.INVALID
    assert errors_of(dataset) == [(BROKEN_AT, "columns")]
    assert f"row {BROKEN_AT}" in dataset.error


def test_a_tsv_file_and_other_row_shapes_in_csv(org):
    rows = rows_of(F.ALPACA)
    tsv = csv_bytes(rows, ["instruction", "input", "output"]).replace(b",", b"\t")
    dataset = validated(org, tsv, "alpaca.tsv")
    assert dataset.status == S.READY, dataset.report["errors"]
    assert dataset.report["files"][0]["row_format"] == F.ALPACA


# --- Parquet


def test_a_good_parquet_file_is_accepted(org):
    dataset = validated(org, parquet_bytes(rows_of(F.PROMPT_COMPLETION)), "qa.parquet")
    assert dataset.status == S.READY, dataset.report["errors"]
    assert dataset.format == F.PARQUET
    assert dataset.example_count == 120


def test_parquet_with_chat_messages_and_a_numeric_answer_column(org):
    chat = validated(org, parquet_bytes(rows_of(F.OPENAI)), "chat.parquet")
    assert chat.status == S.READY, chat.report["errors"]
    assert chat.report["preview"][0]["record"]["messages"][0]["role"] == "system"

    rows = [{"review": f"Review {i}", "stars": i % 5 + 1} for i in range(120)]
    labels = validated(
        org, parquet_bytes(rows), "r.parquet", prompt_column="review", answer_column="stars"
    )
    assert labels.status == S.READY, labels.report["errors"]
    assert labels.report["preview"][0]["record"]["messages"][1]["content"] == "1"


def test_a_broken_parquet_row_is_rejected_with_its_row_number(org):
    rows = rows_of(F.PROMPT_COMPLETION)
    rows[BROKEN_AT - 1] = {"prompt": "Q?", "completion": None}
    dataset = validated(org, parquet_bytes(rows), "qa.parquet")
    assert dataset.status == S.INVALID
    assert errors_of(dataset) == [(BROKEN_AT, "type")]
    assert f"row {BROKEN_AT}" in dataset.error


def test_normalised_lines_are_one_json_object_each(org):
    dataset = validated(org, jsonl(rows_of(F.OPENAI)))
    from django.core.files.storage import default_storage

    with default_storage.open(dataset.train_file, "rb") as f:
        lines = f.read().decode().splitlines()
    assert len(lines) == dataset.report["split"]["counts"]["train"]
    assert all(json.loads(line)["type"] == "chat" for line in lines)


def test_mapping_to_a_missing_answer_key_names_the_keys_there_are(org):
    rows = [{"question": r["text"], "answer": r["text"]} for r in rows_of(F.TEXT)]
    dataset = validated(org, jsonl(rows), prompt_column="q", answer_column="a")
    assert dataset.status == S.INVALID
    assert dataset.error == (
        "Column 'a' not found; the columns are 'answer', 'question'. "
        "Map the prompt and answer columns and validate again."
    )
