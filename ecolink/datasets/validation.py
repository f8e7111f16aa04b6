"""Streaming validation: read a dataset once, normalise and check every record, count its
tokens, and write the train/validation/test splits the trainer reads.

Memory stays flat as the file grows: records pass through in batches, token lengths are
kept as a count per length, and duplicates as 4-byte hashes. Nothing here touches the
database; `services.dataset_validate` runs it and records the outcome.
"""

import gc
import hashlib
import json
import random
import string
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from itertools import chain
from pathlib import Path
from typing import BinaryIO

from ecolink.datasets import readers
from ecolink.datasets.formats import (
    CONTAINERS,
    F,
    Mapping,
    RecordError,
    detect_row_format,
    normaliser_for,
)
from ecolink.datasets.readers import FileError
from ecolink.datasets.report import Report
from ecolink.datasets.tokens import TokenCounter

MIN_EXAMPLES = 100
RECOMMENDED_EXAMPLES = 1000
# Formats are detected from the first records that parse, by majority, looking no further
# than DETECT_WITHIN lines or rows.
DETECT_FROM = 50
DETECT_WITHIN = 10_000
BATCH = 1024
# Splits are assigned in shuffled blocks of 20, so 80/15/5 holds exactly at every 20 rows.
SPLIT_BLOCK = {"train": 16, "validation": 3, "test": 1}
SPLIT_BLOCK_WITH_VALIDATION_FILE = {"train": 19, "validation": 0, "test": 1}
SPLITS = ("train", "validation", "test")

_NOISE = (string.punctuation + string.whitespace + "\x1f").encode()
_LOWER = bytes.maketrans(string.ascii_uppercase.encode(), string.ascii_lowercase.encode())


def _record_encoder():
    """Compact JSON for one record. The C encoder is made once, not per call as
    `json.dumps` does: a quarter of the cost of writing a record."""
    from json import encoder

    if encoder.c_make_encoder is None:
        return json.JSONEncoder(separators=(",", ":")).encode

    def unsupported(value):
        raise TypeError(f"{type(value).__name__} is not JSON")

    make = encoder.c_make_encoder(
        None, unsupported, encoder.encode_basestring_ascii, None, ":", ",", False, False, True
    )
    return lambda record: "".join(make(record, 0))


_encode_record = _record_encoder()


@dataclass(frozen=True)
class Options:
    format: str = F.AUTO
    mapping: Mapping = field(default_factory=Mapping)
    max_seq_length: int = 2048
    seed: int = 42
    max_line_bytes: int = 8 * 1024 * 1024
    max_decoded_bytes: int = 2 * 1024**3
    max_decode_ratio: int = 100


@dataclass(frozen=True)
class Source:
    """A file to validate: `open()` returns a fresh, seekable binary file object."""

    open: Callable[[], BinaryIO]
    filename: str
    size: int


@dataclass
class Outcome:
    ok: bool
    report: dict
    format: str
    example_count: int = 0
    token_count: int = 0
    is_preference: bool = False
    content_hash: str = ""
    # Local paths of the normalised split files; only when ok.
    split_files: dict[str, Path] = field(default_factory=dict)
    error: str = ""


def validate(
    main: Source,
    *,
    options: Options,
    counter: TokenCounter,
    workdir: Path,
    validation: Source | None = None,
) -> Outcome:
    """Validate `main` (and a separate `validation` file), writing splits under `workdir`."""
    started = time.perf_counter()
    report = Report(max_seq_length=options.max_seq_length, tokenizer=counter.name)
    report.exact_tokens = counter.exact
    writers = {name: open(workdir / f"{name}.jsonl", "w", encoding="ascii") for name in SPLITS}  # noqa: SIM115
    gc_was_enabled = gc.isenabled()
    # Parsed records hold no reference cycles: reference counting frees them, and the cyclic
    # collector would only rescan the batch in flight, thousands of times (a third of the time).
    gc.disable()
    try:
        block = SPLIT_BLOCK_WITH_VALIDATION_FILE if validation else SPLIT_BLOCK
        run = _Run(options, counter, report, writers, _split_plan(options.seed, block))
        run.read(main, file_label="")
        main_examples = report.examples
        if validation is not None:
            run.split_plan = _constant("validation")
            run.expected_type = run.record_type
            run.read(validation, file_label="validation")
    finally:
        if gc_was_enabled:
            gc.enable()
        for writer in writers.values():
            writer.close()

    content_hash = _sha256(main, validation)
    report.content_hash = content_hash
    report.finish(
        main_examples=main_examples,
        min_examples=MIN_EXAMPLES,
        recommended_examples=RECOMMENDED_EXAMPLES,
        seconds=time.perf_counter() - started,
        seed=options.seed,
        validation_file=validation.filename if validation else "",
    )
    ok = not report.has_errors
    return Outcome(
        ok=ok,
        report=report.as_dict(),
        format=run.dataset_format or options.format,
        # The counts of a dataset that can be trained on; the report keeps what was found.
        example_count=report.examples if ok else 0,
        token_count=report.split_tokens["train"] if ok else 0,
        is_preference=run.record_type == "preference",
        content_hash=content_hash,
        split_files={name: workdir / f"{name}.jsonl" for name in SPLITS} if ok else {},
        error="" if ok else report.summary_line(),
    )


class _Run:
    """The state of one validation pass across the main file and the validation file."""

    def __init__(self, options, counter, report, writers, split_plan):
        self.options = options
        self.counter = counter
        self.report = report
        self.writers = writers
        self.split_plan = split_plan
        self.dataset_format = ""
        self.record_type = ""  # chat, text or preference: one per dataset
        self.expected_type = ""

    def read(self, source: Source, *, file_label: str) -> None:
        report = self.report
        report.begin_file(file_label)
        if source.size == 0:
            report.file_error("empty", "The file is empty.")
            return
        with source.open() as f:
            container = self._container(f, source.filename)
            report.set_unit("line" if container == readers.JSONL else "row")
            try:
                rows = self._rows(f, container, source)
                self._consume(rows, container)
            except FileError as error:
                report.file_error(error.kind, error.message, number=error.number)
        if report.file_rows == 0 and not report.file_errors:
            report.file_error("empty", "The file has no records.")

    def _container(self, f: BinaryIO, filename: str) -> str:
        forced = self.options.format
        if forced in CONTAINERS:
            return forced
        head = f.read(4096)
        f.seek(0)
        return readers.sniff_container(head, filename)

    def _rows(self, f: BinaryIO, container: str, source: Source) -> Iterator[readers.Row]:
        options = self.options
        if container == F.PARQUET:
            return readers.iter_parquet(
                f,
                size_bytes=source.size,
                max_bytes=options.max_decoded_bytes,
                max_ratio=options.max_decode_ratio,
            )
        if container == F.CSV:
            return readers.iter_csv(
                f, filename=source.filename, max_line_bytes=options.max_line_bytes
            )
        return readers.iter_jsonl(f, max_line_bytes=options.max_line_bytes)

    def _consume(self, rows: Iterator[readers.Row], container: str) -> None:
        report = self.report
        mapping = self.options.mapping
        head = _head(rows)
        row_format = self._row_format(head, container)
        if row_format is None:
            return
        source_format = container if container in CONTAINERS else row_format
        if not self.dataset_format:
            self.dataset_format = source_format
        report.set_format(row_format, container=container)
        if container in CONTAINERS:
            self._check_columns(head, row_format)
        normalise = normaliser_for(row_format, mapping, source_format=source_format)
        batch: list[tuple[int, dict]] = []
        flushed = 0
        for number, value, error in chain(head, rows):
            if error is not None:
                report.record_error(number, error)
                continue
            try:
                record = normalise(value)
            except RecordError as record_error:
                report.record_error(number, record_error, raw=value)
                continue
            if container == F.CSV:
                report.note_formula_cells(number, value)
            batch.append((number, record))
            if len(batch) >= BATCH:
                self._flush(batch)
                batch = []
                flushed += 1
                if flushed % 64 == 0:
                    gc.collect(1)  # the collector is paused: sweep up any young cycles
        if batch:
            self._flush(batch)

    def _row_format(self, head: list[readers.Row], container: str) -> str | None:
        forced = self.options.format
        if forced in (F.AUTO, *CONTAINERS):
            votes = Counter(
                detect_row_format(value, self.options.mapping)
                for _, value, _ in head
                if value is not None
            )
            votes.pop(None, None)
            if votes:
                return votes.most_common(1)[0][0]
            first = next((value for _, value, _ in head if value is not None), None)
            if first is not None:
                keys = ", ".join(repr(key) for key in sorted(first)[:12]) or "none"
                mapping = self.options.mapping
                if mapping.answer_column:
                    message = (
                        f"Column {mapping.answer_column!r} not found; the columns are {keys}. "
                        "Map the prompt and answer columns and validate again."
                    )
                else:
                    message = (
                        f"Could not tell the format from the keys ({keys}): choose the format, "
                        "or map the prompt and answer columns, and validate again."
                    )
                self.report.file_error("unknown_format", message)
                return None
            # Nothing parsed: report the lines' own errors.
            for number, _, error in head:
                self.report.record_error(number, error)
            if len(head) >= DETECT_WITHIN:
                self.report.file_error(
                    "unreadable", f"None of the first {DETECT_WITHIN:,} records could be read."
                )
            return None
        return forced

    def _check_columns(self, head: list[readers.Row], row_format: str) -> None:
        """Mapped columns missing from a CSV or Parquet file are one clear error."""
        mapping = self.options.mapping
        first = next((value for _, value, _ in head if value is not None), None)
        if first is None or row_format != F.PROMPT_COMPLETION:
            return
        missing = [key for key in (mapping.prompt_key, mapping.answer_key) if key not in first]
        if missing:
            raise FileError(
                "columns",
                f"column {', '.join(repr(m) for m in missing)} not found; the columns are "
                f"{', '.join(repr(c) for c in list(first)[:20])}. Map the prompt and answer "
                "columns and validate again.",
                number=1,
            )

    def _flush(self, batch: list[tuple[int, dict]]) -> None:
        """Count tokens for a batch, then check, hash and write each record."""
        texts: list[str] = []
        for _, record in batch:
            texts.extend(_texts(record))
        counts = self.counter.count(texts)
        overhead = self.counter.turn_overhead
        report = self.report
        add_example = report.add_example
        writers = self.writers
        split_plan = self.split_plan
        position = 0
        for number, record in batch:
            kind = record["type"]
            start = position
            if kind == "chat":
                total = trainable = 0
                for message in record["messages"]:
                    c = counts[position]
                    position += 1
                    role = message["role"]
                    total += c + overhead[role]
                    if role == "assistant" and message.get("weight", 1):
                        trainable += c
            elif kind == "text":
                total = trainable = counts[position]
                position += 1
            else:
                n = len(record["prompt"])
                prompt = sum(counts[position : position + n]) + n * overhead["user"]
                position += n
                sides = []
                for side in ("chosen", "rejected"):
                    n = len(record[side])
                    sides.append(sum(counts[position : position + n]) + n * overhead["assistant"])
                    position += n
                total, trainable = prompt + max(sides), sides[0]
            if self.expected_type and kind != self.expected_type:
                report.record_error(
                    number,
                    RecordError(
                        "mixed_formats",
                        f"the validation file holds {kind} records, the dataset "
                        f"{self.expected_type} records",
                    ),
                )
                continue
            self.record_type = self.record_type or kind
            if trainable == 0:
                report.record_error(
                    number,
                    RecordError(
                        "zero_trainable",
                        "no trainable tokens: every assistant turn is empty or has weight 0",
                    ),
                )
                continue
            contents = tuple(texts[start:position])
            split = next(split_plan)
            add_example(
                number,
                record,
                total,
                trainable,
                split,
                hash((kind, contents)),
                hash(_near_duplicate_form(contents)),
            )
            if not report.has_errors:
                writers[split].write(_encode_record(record) + "\n")


def _head(rows: Iterator[readers.Row]) -> list[readers.Row]:
    """The first rows, up to DETECT_FROM that parsed (or DETECT_WITHIN in all)."""
    head: list[readers.Row] = []
    parsed = 0
    for row in rows:
        head.append(row)
        parsed += row[1] is not None
        if parsed >= DETECT_FROM or len(head) >= DETECT_WITHIN:
            break
    return head


def _texts(record: dict) -> list[str]:
    """The strings of a record whose tokens count, in a fixed order."""
    kind = record["type"]
    if kind == "chat":
        return [m["content"] for m in record["messages"]]
    if kind == "text":
        return [record["text"]]
    return [m["content"] for side in ("prompt", "chosen", "rejected") for m in record[side]]


def _near_duplicate_form(contents: tuple[str, ...]) -> bytes:
    """Lowercase, without punctuation or whitespace: rows equal in this form are
    near-duplicates (bytes, because bytes.translate deletes characters fastest)."""
    return "\x1f".join(contents).encode("utf-8", "replace").translate(_LOWER, _NOISE)


def _split_plan(seed: int, block: dict[str, int]) -> Iterator[str]:
    """train/validation/test for each example in turn: a fixed function of the seed."""
    rng = random.Random(seed)
    names = [name for name, n in block.items() for _ in range(n)]
    while True:
        rng.shuffle(names)
        yield from names


def _constant(name: str) -> Iterator[str]:
    while True:
        yield name


def _sha256(*sources: Source | None) -> str:
    digest = hashlib.sha256()
    for source in sources:
        if source is None:
            continue
        with source.open() as f:
            while chunk := f.read(1024 * 1024):
                digest.update(chunk)
    return digest.hexdigest()
