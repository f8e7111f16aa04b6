"""Reading an uploaded file as a stream of records, with caps so that hostile input cannot
exhaust memory: a maximum line length for JSONL and CSV, and a cap on how large a
Parquet file may become once decoded.

Each reader yields `(number, value, error)`: the 1-based line (JSONL) or row (CSV, with
the header as row 1; Parquet) number, the parsed dict or None, and a RecordError or None.
A problem that makes the rest of the file unreadable raises FileError instead.
"""

import csv
import json
from collections.abc import Iterator
from typing import BinaryIO

from ecolink.datasets.formats import F, RecordError

JSONL = "jsonl"
BOM = b"\xef\xbb\xbf"
EXCERPT_CHARS = 160
# Parquet rows are decoded this many at a time: the decoded-size cap is checked per batch.
PARQUET_BATCH_ROWS = 64
# Below this a high compression ratio is normal (tiny files, repeated system prompts).
DECODED_FLOOR_BYTES = 64 * 1024 * 1024

Row = tuple[int, dict | None, RecordError | None]


class FileError(Exception):
    """The file cannot be read any further. `number` is where, when known."""

    def __init__(self, kind: str, message: str, *, number: int | None = None):
        super().__init__(message)
        self.kind = kind
        self.message = message
        self.number = number


def sniff_container(head: bytes, filename: str) -> str:
    """JSONL, CSV or Parquet, from the first bytes and the file name's extension."""
    if head.startswith(b"PAR1"):
        return F.PARQUET
    extension = filename.rsplit(".", 1)[-1].lower() if "." in filename else ""
    if extension in ("parquet", "pq"):
        return F.PARQUET
    if extension in ("csv", "tsv"):
        return F.CSV
    text = head.removeprefix(BOM).lstrip()
    if text[:1] in (b"{", b"[") or extension in ("jsonl", "json", "ndjson"):
        return JSONL
    first_line = text.split(b"\n", 1)[0]
    if b"," in first_line or b"\t" in first_line:
        return F.CSV
    return JSONL


def excerpt(raw: bytes | str) -> str:
    """The start of a raw line, safe to store and show."""
    if isinstance(raw, bytes):
        raw = raw[: EXCERPT_CHARS * 4].decode("utf-8", "replace")
    text = raw[:EXCERPT_CHARS].replace("\x00", "\ufffd")
    return text + ("…" if len(raw) > EXCERPT_CHARS else "")


def human_bytes(n: float) -> str:
    for unit in ("bytes", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1024
    raise AssertionError("unreachable")


# --- JSONL


def iter_jsonl(f: BinaryIO, *, max_line_bytes: int) -> Iterator[Row]:
    readline = f.readline
    loads = json.loads
    number = 0
    while True:
        raw = readline(max_line_bytes + 1)
        if not raw:
            return
        number += 1
        if len(raw) > max_line_bytes and raw[-1:] != b"\n":
            _skip_rest_of_line(f)
            yield number, None, _too_long(raw, max_line_bytes)
            continue
        if number == 1 and raw.startswith(BOM):
            raw = raw[3:]
        if raw.isspace():
            continue  # blank lines, including the last newline, are fine
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as error:
            yield number, None, _not_utf8(raw, error)
            continue
        try:
            value = loads(text)
        except RecursionError:
            yield number, None, RecordError("too_deep", "the JSON is nested too deeply")
            continue
        except ValueError as error:
            yield number, None, _bad_json(text, error, first_line=number == 1)
            continue
        if not isinstance(value, dict):
            yield (
                number,
                None,
                RecordError(
                    "not_object", "each line must be one JSON object", excerpt=excerpt(text)
                ),
            )
            continue
        yield number, value, None


def _skip_rest_of_line(f: BinaryIO) -> None:
    """Read past the end of an over-long line a megabyte at a time, keeping none of it."""
    while True:
        chunk = f.readline(1024 * 1024)
        if not chunk or chunk.endswith(b"\n"):
            return


def _too_long(raw: bytes, limit: int) -> RecordError:
    return RecordError(
        "too_long",
        f"the line is longer than {human_bytes(limit)}, the most one example may take",
        excerpt=excerpt(raw),
    )


def _not_utf8(raw: bytes, error: UnicodeDecodeError) -> RecordError:
    return RecordError(
        "encoding",
        f"not valid UTF-8: byte 0x{raw[error.start]:02x} at byte {error.start + 1}; "
        "save the file as UTF-8",
        excerpt=excerpt(raw),
    )


def _bad_json(text: str, error: ValueError, *, first_line: bool) -> RecordError:
    message = f"invalid JSON: {getattr(error, 'msg', str(error))}"
    if hasattr(error, "colno"):
        message += f" at column {error.colno}"
    if first_line and text.lstrip().startswith("["):
        message += " (the file looks like one JSON array: use JSON Lines, one object per line)"
    return RecordError("json", message, excerpt=excerpt(text))


# --- CSV


class _LineTooLong(Exception):
    def __init__(self, number: int, raw: bytes):
        self.number = number
        self.raw = raw


def iter_csv(f: BinaryIO, *, filename: str, max_line_bytes: int) -> Iterator[Row]:
    """Rows of a CSV (or TSV) file with a header row, as dicts keyed by column name."""
    delimiter = _sniff_delimiter(f, filename)
    bad_lines: list[tuple[int, bytes, UnicodeDecodeError]] = []
    # csv's own cap on a field; a quoted field may span lines that are each under the limit.
    csv.field_size_limit(max(max_line_bytes, 131072))
    reader = csv.reader(_decoded_lines(f, max_line_bytes, bad_lines), delimiter=delimiter)
    try:
        header = next(reader, None)
    except _LineTooLong:
        raise FileError("too_long", "the header row is too long", number=1) from None
    except csv.Error as error:
        raise FileError("csv", f"the header row cannot be read: {error}", number=1) from None
    if bad_lines:
        number, raw, decode_error = bad_lines[0]
        raise FileError("encoding", _not_utf8(raw, decode_error).message, number=1)
    if header is None:
        raise FileError("empty", "The file is empty.")
    columns = [name.strip() for name in header]
    if any(not name for name in columns) or len(set(columns)) != len(columns):
        raise FileError("columns", "the header row must name every column once", number=1)

    number = 1
    while True:
        try:
            fields = next(reader, None)
        except _LineTooLong as error:
            number += 1
            raise FileError(
                "too_long",
                _too_long(error.raw, max_line_bytes).message
                + "; the rest of the file was not read",
                number=number,
            ) from None
        except csv.Error as error:
            number += 1
            yield number, None, RecordError("csv", f"the row cannot be read: {error}")
            continue
        if fields is None:
            return
        number += 1
        if bad_lines:
            _, raw, decode_error = bad_lines[0]
            bad_lines.clear()
            yield number, None, _not_utf8(raw, decode_error)
            continue
        if not fields:
            continue  # a blank line
        if len(fields) != len(columns):
            yield (
                number,
                None,
                RecordError(
                    "columns",
                    f"the row has {len(fields)} fields, the header has {len(columns)}",
                    excerpt=excerpt(delimiter.join(fields)),
                ),
            )
            continue
        yield number, dict(zip(columns, fields, strict=True)), None


def _sniff_delimiter(f: BinaryIO, filename: str) -> str:
    """Comma, tab, semicolon or pipe, from the header line; quoting stays Excel's."""
    if filename.lower().endswith(".tsv"):
        return "\t"
    header = f.readline(64 * 1024)
    f.seek(0)
    try:
        text = header.removeprefix(BOM).decode("utf-8", "ignore")
        return csv.Sniffer().sniff(text, delimiters=",;\t|").delimiter
    except csv.Error:
        return ","


def _decoded_lines(f: BinaryIO, max_line_bytes: int, bad_lines: list) -> Iterator[str]:
    """Lines as text for the csv module; undecodable lines are noted and replaced."""
    number = 0
    while True:
        raw = f.readline(max_line_bytes + 1)
        if not raw:
            return
        number += 1
        if len(raw) > max_line_bytes and raw[-1:] != b"\n":
            raise _LineTooLong(number, raw)
        if number == 1 and raw.startswith(BOM):
            raw = raw[3:]
        try:
            yield raw.decode("utf-8")
        except UnicodeDecodeError as error:
            bad_lines.append((number, raw, error))
            yield raw.decode("utf-8", "replace")


# --- Parquet


def decoded_limit(size_bytes: int, *, max_bytes: int, max_ratio: int) -> int:
    """How large a Parquet file of `size_bytes` may get once decoded."""
    return min(max_bytes, max(min(DECODED_FLOOR_BYTES, max_bytes), size_bytes * max_ratio))


def iter_parquet(f: BinaryIO, *, size_bytes: int, max_bytes: int, max_ratio: int) -> Iterator[Row]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    unreadable = (pa.ArrowException, OSError, ValueError, EOFError)
    limit = decoded_limit(size_bytes, max_bytes=max_bytes, max_ratio=max_ratio)
    try:
        parquet = pq.ParquetFile(f)
        meta = parquet.metadata
        declared = sum(meta.row_group(i).total_byte_size for i in range(meta.num_row_groups))
    except unreadable as error:
        raise FileError(
            "parquet", f"Not a readable Parquet file (truncated or corrupt): {error}"
        ) from None
    if declared > limit:
        raise FileError("decoded_size", _too_big(declared, size_bytes, limit))

    number = decoded = 0
    batches = parquet.iter_batches(batch_size=PARQUET_BATCH_ROWS, use_threads=False)
    while True:
        try:
            batch = next(batches, None)
        except unreadable as error:
            raise FileError(
                "parquet", f"the file is corrupt from here on: {error}", number=number + 1
            ) from None
        if batch is None:
            return
        decoded += batch.nbytes
        if decoded > limit:
            raise FileError(
                "decoded_size",
                _too_big(decoded, size_bytes, limit, partial=True),
                number=number + 1,
            )
        for row in batch.to_pylist():
            number += 1
            yield number, _scalars_as_text(row), None


def _too_big(decoded: int, size_bytes: int, limit: int, *, partial: bool = False) -> str:
    grows = "already decodes" if partial else "decodes"
    return (
        f"this {human_bytes(size_bytes)} Parquet file {grows} to {human_bytes(decoded)}, "
        f"more than the {human_bytes(limit)} allowed"
    )


def _scalars_as_text(row: dict) -> dict:
    # Typed columns: a numeric answer ("4", a class label) reads like CSV's text.
    return {key: str(value) if type(value) in (int, float) else value for key, value in row.items()}
