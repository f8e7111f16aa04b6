import pytest
from django.core.management import call_command

from ecolink.catalog.models import BaseModel, GpuType, Region, RegionCapacity
from ecolink.catalog.services import catalog_seed

pytestmark = pytest.mark.django_db


def transformer_params(m: BaseModel) -> int:
    """Parameter count implied by the architecture numbers (Llama/Qwen/Mistral layout)."""
    head_dim = m.hidden_size // m.num_attention_heads
    kv = m.num_kv_heads * head_dim
    attention = 2 * m.hidden_size * m.hidden_size + 2 * m.hidden_size * kv
    mlp = 3 * m.hidden_size * m.intermediate_size
    embeddings = m.vocab_size * m.hidden_size * (1 if m.tie_word_embeddings else 2)
    return m.num_layers * (attention + mlp) + embeddings


def test_seed_installs_the_models_and_gpus_the_seeds_name():
    catalog_seed()
    ids = set(BaseModel.objects.values_list("hf_id", flat=True))
    for expected in [
        "meta-llama/Llama-3.1-8B-Instruct",
        "meta-llama/Llama-3.3-70B-Instruct",
        "mistralai/Mistral-7B-Instruct-v0.3",
        "Qwen/Qwen2.5-0.5B-Instruct",
        "Qwen/Qwen2.5-14B-Instruct",
        "deepseek-ai/DeepSeek-R1-Distill-Qwen-1.5B",
        "deepseek-ai/DeepSeek-R1-Distill-Qwen-14B",
        "microsoft/Phi-3.5-mini-instruct",
        "google/gemma-2-9b-it",
    ]:
        assert expected in ids
    slugs = set(GpuType.objects.values_list("slug", flat=True))
    assert {
        "cpu",
        "nvidia-t4-16gb",
        "nvidia-l4-24gb",
        "nvidia-a10g-24gb",
        "nvidia-a100-40gb",
        "nvidia-a100-80gb",
        "nvidia-h100-80gb",
    } <= slugs
    assert RegionCapacity.objects.filter(region__slug="local", gpu_type__slug="cpu").exists()


@pytest.mark.parametrize("family", ["llama", "qwen", "mistral"])
def test_architecture_numbers_agree_with_the_parameter_count(family):
    catalog_seed()
    for model in BaseModel.objects.filter(family=family):
        implied = transformer_params(model)
        assert abs(implied - model.parameter_count) / model.parameter_count < 0.01, model.hf_id


def test_seed_is_idempotent_and_keeps_operator_edits():
    catalog_seed()
    GpuType.objects.filter(slug="nvidia-t4-16gb").update(hourly_rate_micros=123)
    counts = (BaseModel.objects.count(), GpuType.objects.count(), Region.objects.count())
    catalog_seed()
    assert (BaseModel.objects.count(), GpuType.objects.count(), Region.objects.count()) == counts
    assert GpuType.objects.get(slug="nvidia-t4-16gb").hourly_rate_micros == 123


def test_make_tiny_model_registers_it_on_the_allow_list(settings, tmp_path):
    settings.TINY_MODEL_DIR = tmp_path / "tiny"
    call_command("make_tiny_model")
    tiny = BaseModel.objects.get(hf_id="ecolink/tiny-qwen2")
    assert tiny.allowed and tiny.fine_tune_eligible and tiny.has_active_deployment
    assert tiny.local_path == str(tmp_path / "tiny")
    assert (tmp_path / "tiny" / "model.safetensors").exists()
