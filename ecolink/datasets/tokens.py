"""Counting tokens for the validation report, fast enough for a million rows.

A byte-level BPE tokenizer (GPT-2 style, like the tiny local model's) cuts text into
pre-tokens with a fixed regex and encodes each pre-token on its own, so a text's count is
the sum of its pieces' counts, and a piece's count can be remembered. For ASCII text that
is exact and several times faster than encoding every row:

- most text splits at single spaces into chunks that pre-tokenize independently (no
  pre-token ever spans a space that follows a non-space), so we look chunks up whole;
- other ASCII text is split with the pre-tokenizer's own regex, spelt for ASCII;
- anything else (non-ASCII, literal special tokens, other tokenizers) goes through
  `encode_batch`.

Unknown pieces go through the BPE model alone, one pre-token at a time.
"""

import re
from collections.abc import Sequence
from pathlib import Path

from tokenizers import Tokenizer, models, pre_tokenizers

# GPT-2's pre-tokenizer regex restricted to ASCII, where it is exact: Python's `\s` would
# also match \x1c-\x1f, which the tokenizer's Unicode `\s` does not, so whitespace is spelt out.
_WS = r"\t\n\x0b\x0c\r "
_ASCII_PRETOKENS = re.compile(
    rf"'s|'t|'re|'ve|'m|'ll|'d| ?[A-Za-z]+| ?[0-9]+| ?[^{_WS}A-Za-z0-9]+"
    rf"|[{_WS}]+(?![^{_WS}])|[{_WS}]+"
)
# A space after whitespace can belong to a whitespace pre-token that starts before it:
# such text cannot be cut at spaces. (Spelt to start with the space: a literal first
# makes the search twice as fast.)
_SPACE_AFTER_WHITESPACE = rf" (?<=[{_WS}] )"
# Bounded so memory stays flat on huge, varied datasets; refilled as needed.
CACHE_LIMIT = 100_000
# Approximate ChatML, as the tiny model's chat template renders a turn.
TURN_TEMPLATE = "<|im_start|>{role}\n<|im_end|>\n"
ROLES = ("system", "user", "assistant")


class _Counts(dict):
    """Token counts of pieces of text. A missing piece counts 0 for now and is noted, so
    that a whole batch's unknown pieces can be encoded in one call."""

    __slots__ = ("current", "misses", "prefix")

    def __init__(self, prefix: str):
        super().__init__()
        self.prefix = prefix
        self.current = 0
        self.misses: list[tuple[int, str]] = []

    def __missing__(self, piece: str) -> int:
        self.misses.append((self.current, piece))
        return 0


class TokenCounter:
    """Counts tokens with one tokenizer; `name` says which, for the report.

    Without a tokenizer file it estimates four characters per token and says so.
    """

    def __init__(self, tokenizer_file: Path | None, *, name: str):
        self.name = name
        self._tokenizer: Tokenizer | None = None
        if tokenizer_file is not None and Path(tokenizer_file).is_file():
            self._tokenizer = Tokenizer.from_file(str(tokenizer_file))
        self.exact = self._tokenizer is not None
        self._fast = self._tokenizer is not None and _splits_like_gpt2(self._tokenizer)
        # Chunks at the start of a text, chunks after a space, and regex pieces.
        self._first, self._after_space, self._pieces = _Counts(""), _Counts(" "), _Counts("")
        # Texts containing an added token (e.g. a literal "<|im_end|>") are encoded in full,
        # since the tokenizer treats those strings as single tokens.
        added = (
            [t.content for t in self._tokenizer.get_added_tokens_decoder().values()]
            if self._tokenizer is not None
            else []
        )
        self._added = re.compile("|".join(map(re.escape, added))) if added else None
        # One search tells whether a text may take the chunked path.
        first_chars = "".join(sorted({re.escape(t[0]) for t in added if t}))
        self._not_cuttable = re.compile(
            _SPACE_AFTER_WHITESPACE + (f"|[{first_chars}]" if first_chars else "")
        ).search
        if self._fast and self._tokenizer is not None:
            self._model_tokenize = self._tokenizer.model.tokenize
        self.turn_overhead = {
            role: self.count([TURN_TEMPLATE.format(role=role)])[0] for role in ROLES
        }

    def count(self, texts: Sequence[str]) -> list[int]:
        """Token counts of `texts`, in order, without special tokens."""
        if self._tokenizer is None:
            return [(len(text) + 3) // 4 for text in texts]
        if not self._fast:
            return self._encode(texts)

        caches = (self._first, self._after_space, self._pieces)
        if sum(map(len, caches)) > CACHE_LIMIT:
            for cache in caches:
                cache.clear()
        first, after_space, pieces = caches
        first_count, after_space_count = first.__getitem__, after_space.__getitem__
        piece_count = pieces.__getitem__
        not_cuttable = self._not_cuttable
        findall = _ASCII_PRETOKENS.findall
        counts = [0] * len(texts)
        whole: list[int] = []
        for i, text in enumerate(texts):
            if text.isascii():
                if not_cuttable(text) is None:
                    first.current = after_space.current = i
                    chunks = text.split(" ")
                    counts[i] = first_count(chunks[0]) + sum(map(after_space_count, chunks[1:]))
                    continue
                if self._added is None or self._added.search(text) is None:
                    pieces.current = i
                    counts[i] = sum(map(piece_count, findall(text)))
                    continue
            whole.append(i)

        for cache in caches:
            for i, piece in cache.misses:
                n = cache.get(piece)
                if n is None:
                    n = cache[piece] = self._count_unknown(cache.prefix + piece)
                counts[i] += n
            cache.misses.clear()
        if whole:
            for i, n in zip(whole, self._encode([texts[i] for i in whole]), strict=True):
                counts[i] = n
        return counts

    def _count_unknown(self, text: str) -> int:
        """Tokens of an ASCII text without added tokens, one pre-token at a time through
        the BPE model (far cheaper per call than a full encode)."""
        pieces = self._pieces
        n = 0
        for piece in _ASCII_PRETOKENS.findall(text):
            c = pieces.get(piece)
            if c is None:
                c = pieces[piece] = len(self._model_tokenize(piece.translate(_BYTE_LEVEL)))
            n += c
        return n

    def _encode(self, texts: Sequence[str]) -> list[int]:
        assert self._tokenizer is not None  # only the exact path encodes
        encoded = self._tokenizer.encode_batch(list(texts), add_special_tokens=False)
        return [len(e.ids) for e in encoded]


def _byte_level_alphabet() -> dict[int, str]:
    """GPT-2's map from bytes to the printable characters its BPE vocabulary is written in
    (as `pre_tokenizers.ByteLevel` applies it), for the ASCII range."""
    printable = [*range(ord("!"), ord("~") + 1), *range(0xA1, 0xAD), *range(0xAE, 0x100)]
    mapping = {b: chr(b) for b in printable}
    shifted = 0
    for b in range(256):
        if b not in mapping:
            mapping[b] = chr(256 + shifted)
            shifted += 1
    return {b: c for b, c in mapping.items() if b < 128}


_BYTE_LEVEL = str.maketrans(_byte_level_alphabet())


def _splits_like_gpt2(tokenizer: Tokenizer) -> bool:
    """True when counting per pre-token as above gives the tokenizer's exact count."""
    pre = tokenizer.pre_tokenizer
    model = tokenizer.model
    return (
        tokenizer.normalizer is None
        and isinstance(pre, pre_tokenizers.ByteLevel)
        and pre.use_regex
        and isinstance(model, models.BPE)
        and model.dropout is None
    )


def counter_for(tokenizer_dir: Path | None, *, name: str) -> TokenCounter:
    """A counter for the model folder `tokenizer_dir` (its `tokenizer.json`)."""
    path = Path(tokenizer_dir) / "tokenizer.json" if tokenizer_dir else None
    return TokenCounter(path, name=name)
