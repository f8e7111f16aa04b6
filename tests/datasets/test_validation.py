"""What the report says: the split, duplicates, token lengths, example counts and chat
checks."""

import hashlib

import pytest

from ecolink.datasets.models import Dataset
from ecolink.datasets.services import token_counter
from tests.datasets.builders import (
    errors_of,
    jsonl,
    openai_row,
    read_split,
    rows_of,
    text_row,
    validated,
)

F = Dataset.Format
S = Dataset.Status
SPLITS = ("train", "validation", "test")


def split_of(dataset):
    return {split: [r["text"] for r in read_split(dataset, split)] for split in SPLITS}


def test_the_split_is_80_15_5_and_the_same_for_the_same_seed(org):
    content = jsonl(rows_of(F.TEXT, 200))
    first = validated(org, content, split_seed=7)
    again = validated(org, content, split_seed=7)
    other_seed = validated(org, content, split_seed=8)

    assert first.report["split"]["counts"] == {"train": 160, "validation": 30, "test": 10}
    assert split_of(first) == split_of(again)
    assert split_of(first) != split_of(other_seed)
    every = sorted(t for texts in split_of(first).values() for t in texts)
    assert every == sorted(row["text"] for row in rows_of(F.TEXT, 200))


def test_split_files_are_byte_identical_for_the_same_seed(org):
    from django.core.files.storage import default_storage

    content = jsonl(rows_of(F.OPENAI, 150))
    a, b = validated(org, content), validated(org, content)
    for split in SPLITS:
        with (
            default_storage.open(getattr(a, f"{split}_file"), "rb") as fa,
            default_storage.open(getattr(b, f"{split}_file"), "rb") as fb,
        ):
            assert fa.read() == fb.read()
    assert a.train_file != b.train_file


def test_a_separate_validation_file_replaces_the_validation_split(org):
    from django.core.files.base import ContentFile

    dataset = validated(
        org,
        jsonl(rows_of(F.TEXT, 200)),
        validation_file=ContentFile(jsonl(rows_of(F.TEXT, 30, start=1000))),
        validation_filename="dev.jsonl",
    )
    assert dataset.status == S.READY, dataset.report["errors"]
    counts = dataset.report["split"]["counts"]
    assert counts == {"train": 190, "validation": 30, "test": 10}
    assert {r["text"] for r in read_split(dataset, "validation")} == {
        r["text"] for r in rows_of(F.TEXT, 30, start=1000)
    }
    assert dataset.validation_source_filename == "dev.jsonl"


def test_a_validation_file_of_another_kind_is_rejected_with_its_lines(org):
    from django.core.files.base import ContentFile

    dataset = validated(
        org,
        jsonl(rows_of(F.TEXT, 120)),
        validation_file=ContentFile(jsonl(rows_of(F.OPENAI, 3))),
        validation_filename="dev.jsonl",
    )
    assert dataset.status == S.INVALID
    assert [(e["file"], e["number"]) for e in dataset.report["errors"]] == [
        ("validation", 1),
        ("validation", 2),
        ("validation", 3),
    ]
    assert dataset.error.startswith("3 errors; first at validation file, line 1:")


def test_fewer_than_100_examples_is_invalid_and_fewer_than_1000_a_warning(org):
    too_few = validated(org, jsonl(rows_of(F.TEXT, 99)))
    assert too_few.status == S.INVALID
    assert too_few.error == "The dataset has 99 examples: at least 100 are needed."

    small = validated(org, jsonl(rows_of(F.TEXT, 100)))
    assert small.status == S.READY
    assert [w["kind"] for w in small.report["warnings"]] == ["few_examples"]


def test_duplicates_and_near_duplicates_are_measured_and_warned_over_10_percent(org):
    rows = rows_of(F.TEXT, 100)
    rows += [dict(r) for r in rows[:5]]  # exact
    rows += [{"text": r["text"].upper().replace(" ", "  ") + "!!"} for r in rows[5:15]]  # near
    dataset = validated(org, jsonl(rows))
    duplicates = dataset.report["duplicates"]
    assert duplicates["exact"] == 5
    assert duplicates["near"] == 15
    assert duplicates["near_pct"] == pytest.approx(100 * 15 / 115, abs=0.01)
    assert "duplicates" in [w["kind"] for w in dataset.report["warnings"]]

    clean = validated(org, jsonl(rows_of(F.TEXT, 100) + rows_of(F.TEXT, 5)))
    assert clean.report["duplicates"]["exact"] == 5
    assert "duplicates" not in [w["kind"] for w in clean.report["warnings"]]


def test_token_lengths_use_the_tiny_models_tokenizer(org, tiny_model_dir):
    from tokenizers import Tokenizer

    rows = rows_of(F.TEXT, 120)
    dataset = validated(org, jsonl(rows))
    tokenizer = Tokenizer.from_file(str(tiny_model_dir / "tokenizer.json"))
    lengths = sorted(len(tokenizer.encode(r["text"], add_special_tokens=False).ids) for r in rows)
    tokens = dataset.report["tokens"]
    assert tokens["tokenizer"] == "ecolink/tiny-qwen2"
    assert tokens["exact"] is True
    assert tokens["total"] == sum(lengths)
    assert tokens["max"] == lengths[-1]
    assert tokens["p50"] == lengths[59]
    assert tokens["p95"] == lengths[113]
    assert sum(b["count"] for b in tokens["histogram"]) == 120
    assert dataset.token_count == dataset.report["split"]["tokens"]["train"]


def test_chat_tokens_count_the_rendered_conversation_and_train_on_the_assistant(org):
    counter = token_counter()
    row = openai_row(1)
    dataset = validated(org, jsonl([row] * 1 + rows_of(F.OPENAI, 119, start=5)))
    contents = [m["content"] for m in row["messages"]]
    counts = counter.count(contents)
    expected_total = sum(counts) + sum(counter.turn_overhead[m["role"]] for m in row["messages"])
    from django.conf import settings
    from tokenizers import Tokenizer

    rendered = "".join(
        f"<|im_start|>{m['role']}\n{m['content']}<|im_end|>\n" for m in row["messages"]
    )
    tokenizer = Tokenizer.from_file(str(settings.TINY_MODEL_DIR / "tokenizer.json"))
    assert expected_total == len(tokenizer.encode(rendered, add_special_tokens=False).ids)
    assert dataset.report["tokens"]["trainable"] > 0
    assert dataset.report["tokens"]["trainable"] < dataset.report["tokens"]["total"]


def test_examples_over_the_max_length_are_counted_with_their_lines(org):
    rows = rows_of(F.TEXT, 120)
    rows[9] = {"text": "word " * 400}
    dataset = validated(org, jsonl(rows), max_seq_length=128)
    assert dataset.status == S.READY
    assert dataset.report["tokens"]["over_max_length"] == 1
    warning = next(w for w in dataset.report["warnings"] if w["kind"] == "over_max_length")
    assert warning["numbers"] == [10]


def test_examples_with_zero_trainable_tokens_are_errors(org):
    rows = rows_of(F.OPENAI, 120)
    rows[3]["messages"][2]["weight"] = 0
    dataset = validated(org, jsonl(rows))
    assert dataset.status == S.INVALID
    assert errors_of(dataset) == [(4, "zero_trainable")]


@pytest.mark.parametrize(
    ("messages", "kind"),
    [
        ([{"role": "user", "content": "a"}, {"role": "user", "content": "b"}], "role_order"),
        ([{"role": "assistant", "content": "a"}], "role_order"),
        ([{"role": "user", "content": "a"}], "role_order"),
        (
            [
                {"role": "user", "content": "a"},
                {"role": "system", "content": "late"},
                {"role": "assistant", "content": "b"},
            ],
            "role_order",
        ),
        ([{"role": "user", "content": "a"}, {"role": "assistant", "content": "  "}], "empty_turn"),
        ([{"role": "user", "content": ""}, {"role": "assistant", "content": "b"}], "empty_turn"),
        ([{"role": "tool", "content": "a"}, {"role": "assistant", "content": "b"}], "role"),
        (
            [{"role": "user", "content": "a", "weight": 1}, {"role": "assistant", "content": "b"}],
            "weight",
        ),
        (
            [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b", "weight": 2}],
            "weight",
        ),
        ([{"role": "user", "content": "a"}, {"role": "assistant", "content": None}], "type"),
        ([], "shape"),
    ],
)
def test_bad_role_order_and_empty_turns_in_chats(org, messages, kind):
    rows = rows_of(F.OPENAI, 120)
    rows[6] = {"messages": messages}
    dataset = validated(org, jsonl(rows))
    assert errors_of(dataset) == [(7, kind)]


def test_invalid_json_lines_are_reported_with_line_and_column(org):
    lines = jsonl(rows_of(F.TEXT)).splitlines(True)
    lines[11] = b'{"text": "unterminated}\n'
    lines[12] = b'["a list"]\n'
    dataset = validated(org, b"".join(lines))
    assert errors_of(dataset) == [(12, "json"), (13, "not_object")]
    assert "invalid JSON" in dataset.report["errors"][0]["message"]
    assert dataset.report["errors"][0]["excerpt"].startswith('{"text": "unterminated')


def test_a_json_array_file_gets_a_hint(org):
    import json

    dataset = validated(org, json.dumps(rows_of(F.TEXT, 3), indent=1).encode(), "data.json")
    assert dataset.status == S.INVALID
    assert "one JSON array: use JSON Lines" in dataset.report["errors"][0]["message"]


def test_the_content_hash_is_the_sha256_of_the_upload(org):
    content = jsonl(rows_of(F.TEXT))
    dataset = validated(org, content)
    assert dataset.content_hash == hashlib.sha256(content).hexdigest()
    assert dataset.report["content_hash"] == dataset.content_hash


def test_a_base_models_local_tokenizer_is_used_when_chosen(org, tiny_model_dir):
    from ecolink.catalog.models import BaseModel

    BaseModel.objects.create(
        hf_id="acme/local-7b",
        display_name="Local 7B",
        family="acme",
        parameter_count=7_000_000_000,
        num_layers=32,
        hidden_size=4096,
        intermediate_size=11008,
        num_attention_heads=32,
        num_kv_heads=32,
        vocab_size=32000,
        context_length=4096,
        local_path=str(tiny_model_dir),
    )
    chosen = validated(org, jsonl(rows_of(F.TEXT)), tokenizer_model="acme/local-7b")
    assert chosen.report["tokens"]["tokenizer"] == "acme/local-7b"
    missing = validated(org, jsonl(rows_of(F.TEXT)), tokenizer_model="acme/not-here")
    assert missing.report["tokens"]["tokenizer"] == "ecolink/tiny-qwen2"


def test_without_any_tokenizer_tokens_are_estimated_and_said_to_be(org, settings, tmp_path):
    settings.TINY_MODEL_DIR = tmp_path / "nowhere"
    dataset = validated(org, jsonl([text_row(i) for i in range(120)]))
    assert dataset.status == S.READY
    assert dataset.report["tokens"]["exact"] is False
    assert "tokenizer" in [w["kind"] for w in dataset.report["warnings"]]
