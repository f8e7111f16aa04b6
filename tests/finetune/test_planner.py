import pytest
import torch
from peft import LoraConfig, get_peft_model
from transformers import AutoModelForCausalLM

from ecolink.catalog import seed_data
from ecolink.catalog.tiny_model import TinyModelSpec
from ecolink.finetune.planning import planner
from ecolink.finetune.planning.planner import GIB, Gpu, ModelArch, TrainingShape


def arch(hf_id: str) -> ModelArch:
    row = next(r for r in seed_data.BASE_MODELS if r[0] == hf_id)
    _, _, _, params, layers, hidden, inter, heads, kv, vocab, _, tied = row
    return ModelArch(params, layers, hidden, inter, heads, kv, vocab, tied, 2)


CATALOG = [
    Gpu(slug, vram * GIB, rate, slug == "cpu") for slug, _, vram, rate, _ in seed_data.GPU_TYPES
]
GPUS = {gpu.slug: gpu for gpu in CATALOG}
AUTO = TrainingShape(method="auto", micro_batch_size=4, max_seq_length=2048)
MISTRAL_7B = arch("mistralai/Mistral-7B-Instruct-v0.3")
LLAMA_70B = arch("meta-llama/Llama-3.3-70B-Instruct")


def test_seven_b_on_t4_uses_qlora():
    plan = planner.plan(MISTRAL_7B, AUTO, GPUS["nvidia-t4-16gb"], CATALOG)
    assert plan.fits
    assert plan.method == "qlora"
    assert "4-bit" in plan.reason


def test_seven_b_on_a100_80gb_uses_16_bit_lora():
    plan = planner.plan(MISTRAL_7B, AUTO, GPUS["nvidia-a100-80gb"], CATALOG)
    assert plan.fits
    assert plan.method == "lora"
    assert plan.micro_batch_hint == 4


def test_seventy_b_on_t4_does_not_fit_and_names_a_gpu_that_does():
    plan = planner.plan(LLAMA_70B, AUTO, GPUS["nvidia-t4-16gb"], CATALOG)
    assert not plan.fits
    assert plan.max_micro_batch == 0
    suggested = GPUS[plan.suggestion]
    assert planner.plan(LLAMA_70B, AUTO, suggested, CATALOG).fits
    smaller = [g for g in CATALOG if not g.is_cpu and g.vram_bytes < suggested.vram_bytes]
    assert not any(planner.plan(LLAMA_70B, AUTO, g, CATALOG).fits for g in smaller)


def test_nothing_fitting_anywhere_names_no_gpu():
    t4 = GPUS["nvidia-t4-16gb"]
    plan = planner.plan(LLAMA_70B, AUTO, t4, [t4])
    assert not plan.fits and plan.suggestion is None


def test_the_micro_batch_hint_is_the_largest_that_fits():
    t4 = GPUS["nvidia-t4-16gb"]
    shape = TrainingShape(method="qlora", micro_batch_size=64, max_seq_length=2048)
    largest = planner.max_micro_batch(MISTRAL_7B, shape, t4)
    assert 1 <= largest < 64
    fits = planner.estimate(MISTRAL_7B, planner._with(shape, micro_batch_size=largest))
    over = planner.estimate(MISTRAL_7B, planner._with(shape, micro_batch_size=largest + 1))
    assert fits.total <= t4.vram_bytes < over.total
    assert planner.plan(MISTRAL_7B, shape, t4).micro_batch_hint == largest


def test_qlora_keeps_embeddings_in_16_bit_and_quantises_the_rest():
    weights = planner.weight_bytes(MISTRAL_7B, "qlora")
    embeddings = MISTRAL_7B.embedding_params * 2
    assert embeddings < weights < MISTRAL_7B.parameter_count * 2 * 0.35


def tiny_arch() -> ModelArch:
    spec = TinyModelSpec()
    return ModelArch(
        spec.parameter_count(),
        spec.num_layers,
        spec.hidden_size,
        spec.intermediate_size,
        spec.num_attention_heads,
        spec.num_kv_heads,
        spec.vocab_size,
        True,
        4,
    )


def tensor_bytes(tensors) -> int:
    return sum(t.numel() * t.element_size() for t in tensors)


def one_adam_step(model):
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trainable, lr=1e-3)
    ids = torch.randint(0, 500, (2, 16))
    model(input_ids=ids, labels=ids).loss.backward()
    optimizer.step()
    state = [t for s in optimizer.state.values() for k, t in s.items() if k != "step"]
    return trainable, state


def close(estimated: int, real: int) -> bool:
    return abs(estimated - real) <= 0.01 * real


def test_tiny_lora_terms_match_the_real_tensor_bytes(tiny_model_dir):
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    weights_real = tensor_bytes(model.parameters())
    config = LoraConfig(r=8, lora_alpha=16, target_modules=["q_proj", "v_proj", "down_proj"])
    model = get_peft_model(model, config)
    trainable, state = one_adam_step(model)
    shape = TrainingShape(
        method="lora",
        micro_batch_size=2,
        max_seq_length=16,
        lora_r=8,
        target_modules=("q_proj", "v_proj", "down_proj"),
    )
    est = planner.estimate(tiny_arch(), shape, on_cpu=True)
    assert close(est.weights, weights_real)
    assert close(est.adapter, tensor_bytes(trainable))
    assert close(est.gradients, tensor_bytes(p.grad for p in trainable))
    assert close(est.optimizer, tensor_bytes(state))


def test_tiny_full_fine_tuning_terms_match_the_real_tensor_bytes(tiny_model_dir):
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    trainable, state = one_adam_step(model)
    shape = TrainingShape(method="full", micro_batch_size=2, max_seq_length=16)
    est = planner.estimate(tiny_arch(), shape, on_cpu=True)
    assert close(est.weights, tensor_bytes(model.parameters()))
    assert close(est.gradients, tensor_bytes(p.grad for p in trainable))
    assert close(est.optimizer, tensor_bytes(state))
    assert est.adapter == 0  # fp32 weights need no separate master copy


@pytest.mark.parametrize("method", ["lora", "qlora", "full", "prompt_tuning"])
def test_memory_grows_with_the_micro_batch(method):
    small = planner.estimate(MISTRAL_7B, TrainingShape(method, 1, 1024))
    large = planner.estimate(MISTRAL_7B, TrainingShape(method, 8, 1024))
    assert large.total > small.total
    assert large.weights == small.weights
