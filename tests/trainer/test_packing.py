"""Packed examples must not attend to each other: an example's logits inside a packed row
equal its logits when run alone."""

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from worker.trainer.batching import collate
from worker.trainer.config import RunConfig
from worker.trainer.data import tokenize
from worker.trainer.losses import target_logits
from worker.trainer.modeling import load_model
from worker.trainer.records import parse_record


@pytest.fixture(scope="module")
def examples(tiny_model_dir):
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    rows = [
        ("hello model", "ECOLINK-OK"),
        ("what does the adapter learn from the data and why", "the loss falls"),
        ("cost", "balance"),
    ]
    records = [
        parse_record(
            {
                "type": "chat",
                "messages": [{"role": "user", "content": q}, {"role": "assistant", "content": a}],
            }
        )
        for q, a in rows
    ]
    data = tokenize(records, tokenizer, objective="sft", train_on_inputs="true", max_seq_length=512)
    return data.items


def full_logits(model, batch):
    kwargs = {"input_ids": batch.input_ids, "use_cache": False}
    if batch.position_ids is not None:
        kwargs["position_ids"] = batch.position_ids
    return model(**kwargs).logits


@torch.no_grad()
def test_a_packed_example_sees_only_itself(tiny_model_dir, examples):
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir, attn_implementation="sdpa").eval()
    packed = collate(examples, pack=True, capacity=512, pad_id=0)
    assert packed.input_ids.shape[0] == 1  # all three share one row
    logits = full_logits(model, packed)[0]
    for i, example in enumerate(examples):
        alone = full_logits(model, collate([example], pack=True, capacity=512, pad_id=0))[0]
        where = packed.seq_index[0] == i
        torch.testing.assert_close(logits[where], alone, atol=1e-5, rtol=1e-5)

    # The same row without restarting positions lets later examples see earlier ones.
    leaky = model(input_ids=packed.input_ids, use_cache=False).logits[0]
    later = packed.seq_index[0] == packed.seq_index[0, -1]
    assert not torch.allclose(leaky[later], logits[later], atol=1e-3)


@torch.no_grad()
@pytest.mark.parametrize("method", ["lora", "qlora"])
def test_the_training_forward_pass_isolates_packed_examples(
    tiny_model_dir, tmp_path, examples, method
):
    config = RunConfig.from_dict(
        {
            "job_id": "j",
            "base_model": str(tiny_model_dir),
            "train_file": "unused",
            "output_dir": str(tmp_path),
            "method": method,
            "lora": {"target_modules": ["all-linear"], "dropout": 0.0},
        }
    )
    model = load_model(config, torch.device("cpu")).eval()
    for p in model.parameters():  # non-zero adapters, so they take part in the check
        if p.requires_grad:
            p.add_(0.05 * torch.randn_like(p))
    packed = collate(examples, pack=True, capacity=512, pad_id=0)
    together = target_logits(model, packed)
    apart = torch.cat(
        [
            target_logits(model, collate([e], pack=True, capacity=512, pad_id=0))
            for e in _row_order(packed, examples)
        ]
    )
    torch.testing.assert_close(together, apart, atol=1e-4, rtol=1e-4)


def _row_order(batch, examples):
    """Examples in the order they sit in the packed row (targets come out row-major)."""
    order = []
    for i in batch.seq_index[0].tolist():
        if i >= 0 and i not in order:
            order.append(i)
    return [examples[i] for i in order]
