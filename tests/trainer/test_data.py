"""Tokenisation: which tokens carry loss, truncation counts, DPO pairs."""

import pytest
from transformers import AutoTokenizer

from worker.trainer.data import IGNORE, tokenize
from worker.trainer.records import (
    ChatRecord,
    DataError,
    PreferenceRecord,
    TextRecord,
    parse_record,
)


@pytest.fixture(scope="module")
def tokenizer(tiny_model_dir):
    return AutoTokenizer.from_pretrained(tiny_model_dir)


def chat(*turns, weights=None):
    roles = ["user", "assistant"] * len(turns)
    messages = [{"role": r, "content": c} for r, c in zip(roles, turns, strict=False)]
    for i, w in (weights or {}).items():
        messages[i]["weight"] = w
    return parse_record({"type": "chat", "messages": messages, "source_format": "alpaca"})


def trained_text(tokenizer, seq):
    """The text of the tokens that are targets (what the model learns to produce)."""
    return tokenizer.decode([t for t in seq.targets if t != IGNORE])


def sft(tokenizer, records, **kw):
    options = {"objective": "sft", "train_on_inputs": "auto", "max_seq_length": 512, **kw}
    return tokenize(records, tokenizer, **options)


def test_auto_trains_on_assistant_replies_only_for_chat(tokenizer):
    data = sft(tokenizer, [chat("what is up", "ECOLINK-OK")])
    assert trained_text(tokenizer, data.items[0]) == "ECOLINK-OK<|im_end|>"


def test_targets_are_the_next_tokens(tokenizer):
    (seq,) = sft(tokenizer, [chat("hello", "yes")], train_on_inputs="true").items
    assert seq.targets[:-1] == seq.input_ids[1:]
    assert seq.targets[-1] == IGNORE


def test_train_on_inputs_true_trains_on_the_prompt_too(tokenizer):
    (seq,) = sft(tokenizer, [chat("what is up", "ECOLINK-OK")], train_on_inputs="true").items
    assert "what is up" in trained_text(tokenizer, seq)


def test_weight_zero_turns_carry_no_loss(tokenizer):
    record = chat("one", "first reply", "two", "second reply", weights={1: 0})
    (seq,) = sft(tokenizer, [record]).items
    assert trained_text(tokenizer, seq) == "second reply<|im_end|>"


def test_plain_text_trains_on_everything_under_auto(tokenizer):
    (seq,) = sft(tokenizer, [TextRecord("model train data loss")]).items
    first = tokenizer.decode(seq.input_ids[:1])
    assert first + trained_text(tokenizer, seq) == "model train data loss<|im_end|>"
    assert seq.input_ids[-1] == tokenizer.eos_token_id


def test_truncation_is_counted_never_silent(tokenizer):
    long = chat(" ".join(["data"] * 300), "ECOLINK-OK")
    short = chat("hi", "ECOLINK-OK")
    long_reply = chat("hi", " ".join(["token"] * 300))
    data = sft(tokenizer, [long, short, long_reply], max_seq_length=128)
    assert data.truncated == 2
    assert data.dropped == 1  # the long prompt left no reply to learn from
    assert len(data.items) == 2
    assert all(len(s) <= 128 for s in data.items)
    assert data.stats()["truncated_examples"] == 2


def test_templates_without_generation_tags_locate_replies_by_offsets(tokenizer):
    records = [chat("what is up", "ECOLINK-OK", "and now", "more", weights={1: 0})]
    tagged = sft(tokenizer, records).items[0]
    original = tokenizer.chat_template
    tokenizer.chat_template = original.replace("{% generation %}", "").replace(
        "{% endgeneration %}", ""
    )
    try:
        untagged = sft(tokenizer, records).items[0]
    finally:
        tokenizer.chat_template = original
    assert untagged.input_ids == tagged.input_ids
    # The fallback also trains the newline that follows <|im_end|>; nothing from the prompt.
    assert trained_text(tokenizer, untagged).strip() == "more<|im_end|>"


def test_dpo_pairs_train_on_the_replies(tokenizer):
    record = PreferenceRecord(
        prompt=({"role": "user", "content": "q", "weight": 1},),
        chosen=({"role": "assistant", "content": "good", "weight": 1},),
        rejected=({"role": "assistant", "content": "bad answer", "weight": 1},),
    )
    data = tokenize(
        [record], tokenizer, objective="dpo", train_on_inputs="auto", max_seq_length=512
    )
    (pair,) = data.items
    assert trained_text(tokenizer, pair.chosen) == "good<|im_end|>"
    assert trained_text(tokenizer, pair.rejected) == "bad answer<|im_end|>"


def test_records_must_fit_the_objective(tokenizer):
    with pytest.raises(DataError, match="objective 'dpo' needs preference records"):
        tokenize(
            [chat("a", "b")], tokenizer, objective="dpo", train_on_inputs="auto", max_seq_length=128
        )
    pref = PreferenceRecord(prompt=(), chosen=(), rejected=())
    with pytest.raises(DataError, match="preference records need objective 'dpo'"):
        sft(tokenizer, [pref])
    assert isinstance(chat("a", "b"), ChatRecord)
