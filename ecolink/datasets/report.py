"""The validation report: errors with their line numbers, duplicates, token lengths and the
split, gathered while records stream past and written out as the JSON stored on the
Dataset (and rendered by `templates/datasets/_report.html`)."""

import json
from array import array
from collections import Counter
from typing import Any

from ecolink.datasets.formats import RecordError
from ecolink.datasets.readers import excerpt
from ecolink.datasets.sanitise import looks_like_formula

MAX_LISTED_ERRORS = 50
MAX_LISTED_LINES = 10
PREVIEW_ROWS = 5
PREVIEW_CHARS = 500
DUPLICATE_WARN_PCT = 10.0
HISTOGRAM_EDGES = (32, 64, 128, 256, 512, 1024, 2048, 4096, 8192, 16384)
# Duplicates are counted from hashes: 6 bits pick one of 64 arrays and 32 more are kept,
# 4 bytes a row. (38 bits: about two false duplicates in a million rows.) Counting distinct
# ones at the end needs a set of one bucket at a time, not of the whole file.
_HASH_BUCKETS = 64
_BUCKET_MASK = _HASH_BUCKETS - 1
_BUCKET_BITS = 6
_KEPT_BITS = 0xFFFFFFFF

SPLITS = ("train", "validation", "test")


class Report:
    def __init__(self, *, max_seq_length: int, tokenizer: str):
        self.max_seq_length = max_seq_length
        self.tokenizer = tokenizer
        self.exact_tokens = True
        self.content_hash = ""
        self.files: list[dict] = []
        self.errors: list[dict] = []
        self.error_counts: Counter[str] = Counter()
        self.error_total = 0
        self.examples = 0
        self.split_counts = dict.fromkeys(SPLITS, 0)
        self.split_tokens = dict.fromkeys(SPLITS, 0)
        self.total_tokens = 0
        self.trainable_tokens = 0
        self.lengths: Counter[int] = Counter()
        self.over_max = 0
        self.over_max_lines: list[int] = []
        self.formula_cells = 0
        self.formula_lines: list[int] = []
        self.preview: list[dict] = []
        self._exact = [array("I") for _ in range(_HASH_BUCKETS)]
        self._near = [array("I") for _ in range(_HASH_BUCKETS)]
        self._file: dict = {}
        self._result: dict = {}

    # --- while reading

    def begin_file(self, label: str) -> None:
        self._file = {"file": label, "unit": "line", "rows": 0, "examples": 0, "errors": 0}
        self.files.append(self._file)

    def set_unit(self, unit: str) -> None:
        self._file["unit"] = unit

    def set_format(self, row_format: str, *, container: str) -> None:
        self._file["row_format"] = row_format
        self._file["container"] = container

    @property
    def file_rows(self) -> int:
        return self._file["rows"]

    @property
    def file_errors(self) -> int:
        return self._file["errors"]

    @property
    def has_errors(self) -> bool:
        return self.error_total > 0

    def file_error(self, kind: str, message: str, *, number: int | None = None) -> None:
        """The file (from `number` on, when given) could not be read."""
        self._add_error(kind, message, number=number, excerpt_text="", fatal=True)

    def record_error(self, number: int, error: RecordError, *, raw: object = None) -> None:
        self._file["rows"] += 1
        text = error.excerpt
        if not text and raw is not None and len(self.errors) < MAX_LISTED_ERRORS:
            text = excerpt(_compact(raw))
        self._add_error(error.kind, error.message, number=number, excerpt_text=text)

    def _add_error(
        self, kind: str, message: str, *, number: int | None, excerpt_text: str, fatal=False
    ) -> None:
        self.error_total += 1
        self.error_counts[kind] += 1
        self._file["errors"] += 1
        if len(self.errors) < MAX_LISTED_ERRORS:
            self.errors.append(
                {
                    "file": self._file["file"],
                    "unit": self._file["unit"],
                    "number": number,
                    "kind": kind,
                    "message": message,
                    "excerpt": excerpt_text,
                    "fatal": fatal,
                }
            )

    def note_formula_cells(self, number: int, row: dict) -> None:
        if any(isinstance(v, str) and looks_like_formula(v) for v in row.values()):
            self.formula_cells += 1
            if len(self.formula_lines) < MAX_LISTED_LINES:
                self.formula_lines.append(number)

    def add_example(
        self,
        number: int,
        record: dict,
        total: int,
        trainable: int,
        split: str,
        exact_key: int,
        near_key: int,
    ) -> None:
        # Positional arguments: called once per row, where keywords cost measurably.
        file = self._file
        file["rows"] += 1
        file["examples"] += 1
        self.examples += 1
        self.split_counts[split] += 1
        self.split_tokens[split] += total
        self.total_tokens += total
        self.trainable_tokens += trainable
        self.lengths[total] += 1
        if total > self.max_seq_length:
            self.over_max += 1
            if len(self.over_max_lines) < MAX_LISTED_LINES:
                self.over_max_lines.append(number)
        self._exact[exact_key & _BUCKET_MASK].append((exact_key >> _BUCKET_BITS) & _KEPT_BITS)
        self._near[near_key & _BUCKET_MASK].append((near_key >> _BUCKET_BITS) & _KEPT_BITS)
        if len(self.preview) < PREVIEW_ROWS and not file["file"]:
            self.preview.append({"number": number, "record": _clip(record)})

    # --- at the end

    def finish(
        self,
        *,
        main_examples: int,
        min_examples: int,
        recommended_examples: int,
        seconds: float,
        seed: int,
        validation_file: str,
    ) -> None:
        warnings: list[dict[str, Any]] = []
        if main_examples < min_examples and not self.has_errors:
            self._file = self.files[0]
            self.file_error(
                "too_few",
                f"The dataset has {main_examples} examples: at least {min_examples} are needed.",
            )
        elif main_examples < recommended_examples and not self.has_errors:
            warnings.append(
                {
                    "kind": "few_examples",
                    "message": f"{main_examples} examples: {recommended_examples:,} to "
                    "10,000 are recommended.",
                }
            )
        duplicates = self._duplicates()
        if duplicates["near_pct"] > DUPLICATE_WARN_PCT:
            warnings.append(
                {
                    "kind": "duplicates",
                    "message": f"{duplicates['near_pct']:.1f}% of examples are duplicates or "
                    f"near-duplicates (exact: {duplicates['exact_pct']:.1f}%).",
                }
            )
        if self.over_max:
            warnings.append(
                {
                    "kind": "over_max_length",
                    "message": f"{_count(self.over_max, 'example is', 'examples are')} longer "
                    f"than {self.max_seq_length} tokens and will be truncated.",
                    "numbers": self.over_max_lines,
                }
            )
        if self.formula_cells:
            warnings.append(
                {
                    "kind": "formula_cells",
                    "message": f"{_count(self.formula_cells, 'row has', 'rows have')} cells "
                    "that start like a spreadsheet formula (=, +, @). They are kept as text for "
                    "training, and shown and exported with a leading apostrophe.",
                    "numbers": self.formula_lines,
                }
            )
        if not self.exact_tokens:
            warnings.append(
                {
                    "kind": "tokenizer",
                    "message": "No tokenizer was found: token counts are estimates "
                    "(four characters a token).",
                }
            )
        self._result = {
            "files": self.files,
            "examples": self.examples,
            "errors": self.errors,
            "error_counts": dict(self.error_counts),
            "error_total": self.error_total,
            "errors_not_listed": max(0, self.error_total - len(self.errors)),
            "warnings": warnings,
            "duplicates": duplicates,
            "tokens": self._tokens(),
            "split": {
                "seed": seed,
                "source": "validation file" if validation_file else "80/15/5",
                "validation_file": validation_file,
                "counts": self.split_counts,
                "tokens": self.split_tokens,
                # Flat copies for the cost estimate (finetune/quote.py reads these).
                **self.split_counts,
            },
            "validation_tokens": self.split_tokens["validation"],
            "preview": self.preview,
            "content_hash": self.content_hash,
            "seconds": round(seconds, 3),
            "rows_per_second": round(self.examples / seconds) if seconds else 0,
        }
        self._exact = self._near = []  # free the hashes

    def as_dict(self) -> dict:
        return self._result

    def summary_line(self) -> str:
        if not self.errors:
            return ""
        first = self.errors[0]
        where = f"{first['unit']} {first['number']}: " if first["number"] else ""
        label = "validation file, " if first["file"] else ""
        prefix = f"{self.error_total} errors; first at " if self.error_total > 1 else ""
        if not where and not label:
            return f"{prefix}{first['message']}"
        return f"{prefix}{label}{where}{first['message']}"

    def _duplicates(self) -> dict:
        n = self.examples
        exact = n - sum(len(set(bucket)) for bucket in self._exact)
        near = n - sum(len(set(bucket)) for bucket in self._near)
        return {
            "exact": exact,
            "near": near,
            "exact_pct": round(100 * exact / n, 2) if n else 0.0,
            "near_pct": round(100 * near / n, 2) if n else 0.0,
        }

    def _tokens(self) -> dict:
        lengths = sorted(self.lengths.items())
        n = sum(count for _, count in lengths)
        histogram: list[dict[str, Any]] = []
        edges = [*HISTOGRAM_EDGES, None]
        low = 0
        index = 0
        for edge in edges:
            count = 0
            while index < len(lengths) and (edge is None or lengths[index][0] <= edge):
                count += lengths[index][1]
                index += 1
            label = f"{low + 1}–{edge}" if edge is not None else f"> {low}"
            histogram.append({"label": label, "count": count})
            low = edge or low
        while histogram and histogram[-1]["count"] == 0:
            histogram.pop()
        peak = max((b["count"] for b in histogram), default=0)
        for bucket in histogram:
            bucket["pct"] = round(100 * bucket["count"] / peak) if peak else 0
        return {
            "tokenizer": self.tokenizer,
            "exact": self.exact_tokens,
            "total": self.total_tokens,
            "trainable": self.trainable_tokens,
            "p50": _percentile(lengths, n, 0.50),
            "p95": _percentile(lengths, n, 0.95),
            "max": lengths[-1][0] if lengths else 0,
            "mean": round(self.total_tokens / n, 1) if n else 0,
            "max_length": self.max_seq_length,
            "over_max_length": self.over_max,
            "histogram": histogram,
        }


def _count(n: int, one: str, many: str) -> str:
    return f"{n} {one if n == 1 else many}"


def _percentile(lengths: list[tuple[int, int]], n: int, q: float) -> int:
    if not n:
        return 0
    target = q * n
    seen = 0
    for length, count in lengths:
        seen += count
        if seen >= target:
            return length
    return lengths[-1][0]


def _clip(record: dict) -> dict:
    """A copy of a normalised record with long strings shortened, for the preview."""

    def clip_text(text: str) -> str:
        text = text.replace("\x00", "\ufffd")
        return text if len(text) <= PREVIEW_CHARS else text[:PREVIEW_CHARS] + "…"

    out: dict[str, Any] = {}
    for key, value in record.items():
        if isinstance(value, list):
            out[key] = [{**m, "content": clip_text(m["content"])} for m in value]
        elif key == "text":
            out[key] = clip_text(value)
        else:
            out[key] = value
    return out


def _compact(value: object) -> str:
    try:
        return json.dumps(value, ensure_ascii=False)[:1000]
    except (TypeError, ValueError, RecursionError):
        return repr(value)[:1000]
