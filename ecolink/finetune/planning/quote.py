"""The quote for a fine-tune: plan, cost range, balance and capacity gates.

One function answers for the wizard's steps, Approve & Train and the API alike, from the
same catalog rows the meter charges with.
"""

import math
from dataclasses import dataclass

from ecolink.accounts.models import Organization
from ecolink.catalog.models import BaseModel, GpuType, Region, ThroughputEfficiency
from ecolink.catalog.seed_data import DEFAULT_EFFICIENCY
from ecolink.datasets.models import Dataset
from ecolink.finetune.capacity import Capacity, region_capacity
from ecolink.finetune.outcomes import ApprovalRefused
from ecolink.finetune.planning import estimator, planner

NO_CAPACITY = "The region has no free GPU of this type right now."
# The validation split's share of the examples (80/15/5) when the report does not say.
VALIDATION_SHARE = 15 / 80


@dataclass(frozen=True)
class Quote:
    dataset: Dataset
    base_model: BaseModel
    gpu_type: GpuType
    gpu_count: int
    region: Region
    hyperparameters: dict
    plan: planner.Plan
    estimate: estimator.Estimate
    balance_micros: int
    capacity: Capacity
    total_steps: int
    train_examples: int

    @property
    def balance_after_micros(self) -> int:
        return self.balance_micros - self.estimate.high_micros

    @property
    def balance_ok(self) -> bool:
        return self.balance_micros >= self.estimate.high_micros

    @property
    def effective_batch_size(self) -> int:
        hp = self.hyperparameters
        return hp["micro_batch_size"] * hp["gradient_accumulation"] * self.gpu_count

    @property
    def blockers(self) -> list[str]:
        reasons = []
        if not self.plan.fits:
            reasons.append(self.plan.reason)
        if not self.balance_ok:
            reasons.append("Your balance is below the upper estimate: top up first.")
        if not self.capacity.available:
            reasons.append(NO_CAPACITY)
        return reasons


def model_arch(base: BaseModel) -> planner.ModelArch:
    return planner.ModelArch(
        parameter_count=base.parameter_count,
        num_layers=base.num_layers,
        hidden_size=base.hidden_size,
        intermediate_size=base.intermediate_size,
        num_attention_heads=base.num_attention_heads,
        num_kv_heads=base.num_kv_heads,
        vocab_size=base.vocab_size,
        tie_word_embeddings=base.tie_word_embeddings,
        bytes_per_parameter=base.bytes_per_parameter,
    )


def estimator_overheads(gpu: GpuType) -> estimator.Overheads:
    """The fixed phases of a pod run on this GPU type, as the estimator and meter share them."""
    return estimator.Overheads(
        image_pull_seconds=gpu.image_pull_seconds,
        model_load_seconds=gpu.model_load_seconds,
        model_load_seconds_per_gb=gpu.model_load_seconds_per_gb,
        dataset_prep_seconds=gpu.dataset_prep_seconds,
        evaluation_seconds=gpu.evaluation_seconds,
        register_seconds=gpu.register_seconds,
    )


def planner_gpu(gpu: GpuType) -> planner.Gpu:
    return planner.Gpu(
        slug=gpu.slug,
        vram_bytes=gpu.vram_gb * planner.GIB,
        hourly_rate_micros=gpu.hourly_rate_micros,
        is_cpu=gpu.is_cpu,
    )


def training_shape(hp: dict, gpu_count: int) -> planner.TrainingShape:
    return planner.TrainingShape(
        method=hp["method"],
        micro_batch_size=hp["micro_batch_size"],
        max_seq_length=hp["max_seq_length"],
        lora_r=hp["lora_r"],
        target_modules=tuple(hp["target_modules"]),
        gpu_count=gpu_count,
    )


def make_plan(base: BaseModel, gpu: GpuType, hp: dict, gpu_count: int) -> planner.Plan:
    catalog = [planner_gpu(g) for g in GpuType.objects.all()]
    return planner.plan(model_arch(base), training_shape(hp, gpu_count), planner_gpu(gpu), catalog)


def gpu_overview(base: BaseModel, hp: dict, gpu_count: int) -> list[tuple[GpuType, planner.Plan]]:
    """The plan on every catalog GPU type, for the wizard's VRAM table."""
    gpus = list(GpuType.objects.all())
    catalog = [planner_gpu(g) for g in gpus]
    arch, shape = model_arch(base), training_shape(hp, gpu_count)
    return [(g, planner.plan(arch, shape, planner_gpu(g), catalog)) for g in gpus]


def efficiency_for(gpu: GpuType, method: str) -> float:
    row = ThroughputEfficiency.objects.filter(gpu_type=gpu, method=method).first()
    return row.efficiency if row else DEFAULT_EFFICIENCY[method]


def dataset_tokens(dataset: Dataset, max_seq_length: int) -> tuple[int, int, int]:
    """(train examples, train tokens after truncation, validation tokens)."""
    report = dataset.report or {}
    train_examples = report.get("split", {}).get("train") or math.ceil(dataset.example_count * 0.8)
    train_tokens = min(dataset.token_count, train_examples * max_seq_length)
    eval_tokens = report.get("validation_tokens") or int(train_tokens * VALIDATION_SHARE)
    return train_examples, train_tokens, eval_tokens


def make_quote(
    *,
    organization: Organization,
    dataset: Dataset,
    base_model: BaseModel,
    gpu_type: GpuType,
    gpu_count: int,
    region: Region,
    hyperparameters: dict,
) -> Quote:
    hp = hyperparameters
    plan = make_plan(base_model, gpu_type, hp, gpu_count)
    method = plan.method
    train_examples, train_tokens, eval_tokens = dataset_tokens(dataset, hp["max_seq_length"])
    estimate = estimator.estimate_cost(
        estimator.EstimateInput(
            parameter_count=base_model.parameter_count,
            weights_bytes=plan.breakdown.weights,
            train_tokens=train_tokens,
            eval_tokens=eval_tokens,
            epochs=hp["epochs"],
            method=method,
            gpu_count=gpu_count,
            peak_tflops=gpu_type.peak_bf16_tflops,
            efficiency=efficiency_for(gpu_type, method),
            hourly_rate_micros=gpu_type.hourly_rate_micros,
            overheads=estimator_overheads(gpu_type),
        )
    )
    effective = hp["micro_batch_size"] * hp["gradient_accumulation"] * gpu_count
    total_steps = math.ceil(train_examples / effective) * hp["epochs"]
    capacity = region_capacity(region_id=region.pk, gpu_type_id=gpu_type.pk, requested=gpu_count)
    organization.refresh_from_db(fields=["balance_micros"])
    return Quote(
        dataset=dataset,
        base_model=base_model,
        gpu_type=gpu_type,
        gpu_count=gpu_count,
        region=region,
        hyperparameters=hp,
        plan=plan,
        estimate=estimate,
        balance_micros=organization.balance_micros,
        capacity=capacity,
        total_steps=total_steps,
        train_examples=train_examples,
    )


def quote_gate(quote: Quote) -> None:
    """Refuse a quote that can't start: it doesn't fit, the region is full, or the balance
    is below the upper estimate. The message lists every blocker, as the wizard shows it."""
    blockers = quote.blockers
    if not blockers:
        return
    if not quote.plan.fits:
        code, param = "does_not_fit", "gpu_type"
    elif not quote.capacity.available:
        code, param = "capacity_unavailable", "region"
    else:
        code, param = "insufficient_balance", None
    raise ApprovalRefused(" ".join(blockers), code=code, param=param)
