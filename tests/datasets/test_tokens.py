"""The fast token counter gives exactly the tokenizer's counts."""

import string

from hypothesis import given, settings
from hypothesis import strategies as st
from tokenizers import Tokenizer

from ecolink.datasets.tokens import TokenCounter, counter_for

ASCII_TEXT = st.text(alphabet=st.sampled_from(string.printable + "\x1c\x1f\x00"), max_size=300)
# Words and runs of spaces, the shapes the chunked path cuts at.
SPACED_TEXT = st.lists(
    st.one_of(st.sampled_from([" ", "  ", "\n", " \n", "\n ", "\t", "'s", "don't"]), ASCII_TEXT),
    max_size=30,
).map("".join)
ANY_TEXT = st.text(max_size=200)


def exact_counts(tiny_model_dir, texts):
    tokenizer = Tokenizer.from_file(str(tiny_model_dir / "tokenizer.json"))
    return [len(e.ids) for e in tokenizer.encode_batch(texts, add_special_tokens=False)]


def test_the_tiny_tokenizer_takes_the_fast_path(tiny_model_dir):
    assert counter_for(tiny_model_dir, name="tiny")._fast


@settings(max_examples=150, deadline=None)
@given(st.lists(st.one_of(ASCII_TEXT, SPACED_TEXT, ANY_TEXT), max_size=40))
def test_counts_match_the_tokenizer_exactly(tiny_model_dir, texts):
    counter = counter_for(tiny_model_dir, name="tiny")
    assert counter.count(texts) == exact_counts(tiny_model_dir, texts)
    # A second pass answers from the cache, with the same result.
    assert counter.count(texts) == exact_counts(tiny_model_dir, texts)


def test_tricky_strings_match(tiny_model_dir):
    texts = [
        "it's   spaced\t\ttabs\n\n\nnewlines  ",
        "don't 've 'll 'd 're 'm 's",
        "snake_case __dunder__ 3.14 1,000,000 $100",
        "a <|im_end|> literal special token <|im_start|>",
        "<|im_start|>user\nhi<|im_end|>\n",
        "\x0b\x0c\r\n \x1c\x1d",
        "café naïve 数据 🙂",
        "",
        " leading and trailing ",
        "a  b   c \n d\n  e \t f",
        "   ",
        " ",
    ]
    counter = counter_for(tiny_model_dir, name="tiny")
    assert counter.count(texts) == exact_counts(tiny_model_dir, texts)


def test_the_cache_stays_bounded(tiny_model_dir, monkeypatch):
    import ecolink.datasets.tokens as tokens

    monkeypatch.setattr(tokens, "CACHE_LIMIT", 50)
    counter = counter_for(tiny_model_dir, name="tiny")
    sizes = []
    for batch in range(10):
        texts = [f"word{i} other{i * 7}" for i in range(batch * 50, batch * 50 + 50)]
        assert counter.count(texts) == exact_counts(tiny_model_dir, texts)
        sizes.append(sum(len(c) for c in (counter._first, counter._after_space, counter._pieces)))
    # At most the limit plus one batch's new pieces, however many batches pass.
    assert max(sizes) <= 50 + 4 * 50


def test_without_a_tokenizer_it_estimates(tmp_path):
    counter = TokenCounter(tmp_path / "missing.json", name="none")
    assert not counter.exact
    assert counter.count(["abcd" * 10]) == [10]
