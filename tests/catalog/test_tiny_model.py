import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from ecolink.catalog.tiny_model import TinyModelSpec


def test_it_loads_with_from_pretrained_and_generates_tokens(tiny_model_dir):
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    inputs = tokenizer.apply_chat_template(
        [{"role": "user", "content": "hello"}],
        add_generation_prompt=True,
        return_tensors="pt",
        return_dict=True,
    )
    out = model.generate(**inputs, max_new_tokens=8, do_sample=False)
    assert out.shape[1] > inputs["input_ids"].shape[1]


def test_it_is_a_few_hundred_kilobytes_with_the_specs_parameter_count(tiny_model_dir):
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    assert sum(p.numel() for p in model.parameters()) == TinyModelSpec().parameter_count()
    size = (tiny_model_dir / "model.safetensors").stat().st_size
    assert 100_000 < size < 1_000_000


def test_its_chat_template_marks_only_assistant_tokens_for_training(tiny_model_dir):
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    encoded = tokenizer.apply_chat_template(
        [{"role": "user", "content": "ping"}, {"role": "assistant", "content": "ECOLINK-OK"}],
        return_assistant_tokens_mask=True,
        return_dict=True,
    )
    trained = [
        t for t, m in zip(encoded["input_ids"], encoded["assistant_masks"], strict=True) if m
    ]
    assert tokenizer.decode(trained) == "ECOLINK-OK<|im_end|>"


def test_it_is_built_deterministically(tmp_path):
    from ecolink.catalog.tiny_model import build_tiny_model

    a = AutoModelForCausalLM.from_pretrained(build_tiny_model(tmp_path / "a"))
    b = AutoModelForCausalLM.from_pretrained(build_tiny_model(tmp_path / "b"))
    for pa, pb in zip(a.parameters(), b.parameters(), strict=True):
        assert torch.equal(pa, pb)
