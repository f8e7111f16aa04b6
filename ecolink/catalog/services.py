"""Writes to the catalog: seeding it, and registering the tiny local base model."""

from pathlib import Path

from django.db import transaction

from ecolink.catalog import seed_data
from ecolink.catalog.models import (
    BaseModel,
    GpuType,
    Region,
    RegionCapacity,
    ThroughputEfficiency,
)
from ecolink.catalog.tiny_model import TINY_MODEL_ID, TinyModelSpec


@transaction.atomic
def catalog_seed(*, tiny_model_dir: Path | None = None) -> None:
    """Install the seeded catalog. Safe to run again: existing rows keep operator edits."""
    for row in seed_data.BASE_MODELS:
        hf_id, name, family, params, layers, hidden, inter, heads, kv, vocab, ctx, tied = row
        BaseModel.objects.get_or_create(
            hf_id=hf_id,
            defaults=dict(
                display_name=name,
                family=family,
                parameter_count=params,
                num_layers=layers,
                hidden_size=hidden,
                intermediate_size=inter,
                num_attention_heads=heads,
                num_kv_heads=kv,
                vocab_size=vocab,
                context_length=ctx,
                tie_word_embeddings=tied,
                bytes_per_parameter=2,
                has_active_deployment=True,
                **seed_data.inference_rates(params),
            ),
        )
    for slug, name, vram, rate, tflops in seed_data.GPU_TYPES:
        is_cpu = slug == "cpu"
        gpu, _ = GpuType.objects.get_or_create(
            slug=slug,
            defaults=dict(
                display_name=name,
                vram_gb=vram,
                hourly_rate_micros=rate,
                peak_bf16_tflops=tflops,
                is_cpu=is_cpu,
                max_count=2 if is_cpu else 8,
                **(seed_data.CPU_OVERHEADS if is_cpu else {}),
            ),
        )
        efficiencies = seed_data.CPU_EFFICIENCY if is_cpu else seed_data.DEFAULT_EFFICIENCY
        for method, efficiency in efficiencies.items():
            ThroughputEfficiency.objects.get_or_create(
                gpu_type=gpu, method=method, defaults={"efficiency": efficiency}
            )
    for slug, name, capacity in seed_data.REGIONS:
        region, _ = Region.objects.get_or_create(slug=slug, defaults={"display_name": name})
        for gpu_slug, total in capacity.items():
            RegionCapacity.objects.get_or_create(
                region=region,
                gpu_type=GpuType.objects.get(slug=gpu_slug),
                defaults={"total_gpus": total},
            )
    if tiny_model_dir is not None:
        tiny_model_register(path=tiny_model_dir)


def tiny_model_register(*, path: Path) -> BaseModel:
    """Put the tiny local model on the allow-list, pointing at its folder."""
    spec = TinyModelSpec()
    model, _ = BaseModel.objects.update_or_create(
        hf_id=TINY_MODEL_ID,
        defaults=dict(
            display_name="EcoLink tiny (local, CPU)",
            family="qwen",
            parameter_count=spec.parameter_count(),
            num_layers=spec.num_layers,
            hidden_size=spec.hidden_size,
            intermediate_size=spec.intermediate_size,
            num_attention_heads=spec.num_attention_heads,
            num_kv_heads=spec.num_kv_heads,
            vocab_size=spec.vocab_size,
            context_length=spec.context_length,
            tie_word_embeddings=spec.tie_word_embeddings,
            bytes_per_parameter=4,
            has_active_deployment=True,
            local_path=str(path),
            **seed_data.inference_rates(spec.parameter_count()),
        ),
    )
    return model
