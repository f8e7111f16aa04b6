"""VRAM planner: how many bytes a fine-tune needs on one device, and what to do about it.

Pure functions over plain dataclasses. The wizard, the API and the run config all ask it
the same questions: does 16-bit LoRA fit this GPU, or must we quantise to 4-bit (QLoRA)?
What is the largest micro-batch that fits (the trainer's starting hint)? And if nothing
fits, which catalog GPU would?
"""

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

GIB = 1024**3
# The CUDA context, cuBLAS workspaces and the allocator's first pools.
CUDA_CONTEXT_BYTES = 600 * 1024**2
# Memory the caching allocator loses to fragmentation, as a share of everything else.
FRAGMENTATION_MARGIN = 0.10
# NF4 stores 4 bits per weight, plus with double quantisation an 8-bit absmax per block of
# 64 weights and a 32-bit constant per 256 blocks: 4 + 8/64 + 32/(64*256) bits.
NF4_BITS_PER_PARAM = 4 + 8 / 64 + 32 / (64 * 256)
# Bytes kept per token per layer for the recomputation of one layer under gradient
# checkpointing (Korthikanti et al.: 34·s·b·h bytes with 16-bit activations, SDPA attention).
ACTIVATION_BYTES_PER_HIDDEN = 34
# Adapters, their gradients and Adam's two moments are kept in fp32.
FP32 = 4
ADAM_STATE_BYTES = 8
MAX_MICRO_BATCH = 64
LORA_TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


@dataclass(frozen=True)
class ModelArch:
    parameter_count: int
    num_layers: int
    hidden_size: int
    intermediate_size: int
    num_attention_heads: int
    num_kv_heads: int
    vocab_size: int
    tie_word_embeddings: bool = False
    # Bytes per weight as trained in 16-bit (2), or 4 for an fp32 model like the tiny one.
    bytes_per_parameter: int = 2

    @property
    def head_dim(self) -> int:
        return self.hidden_size // self.num_attention_heads

    def module_shape(self, name: str) -> tuple[int, int]:
        """(in_features, out_features) of one projection in one decoder layer."""
        h, kv, i = self.hidden_size, self.num_kv_heads * self.head_dim, self.intermediate_size
        return {
            "q_proj": (h, self.num_attention_heads * self.head_dim),
            "k_proj": (h, kv),
            "v_proj": (h, kv),
            "o_proj": (self.num_attention_heads * self.head_dim, h),
            "gate_proj": (h, i),
            "up_proj": (h, i),
            "down_proj": (i, h),
        }[name]

    @property
    def embedding_params(self) -> int:
        """Input embeddings plus the LM head (once if tied): kept 16-bit under QLoRA."""
        return self.vocab_size * self.hidden_size * (1 if self.tie_word_embeddings else 2)

    @property
    def linear_params(self) -> int:
        """Weights of the decoder layers' projections: what NF4 quantises."""
        per_layer = sum(a * b for a, b in map(self.module_shape, LORA_TARGETS))
        return self.num_layers * per_layer


@dataclass(frozen=True)
class Gpu:
    slug: str
    vram_bytes: int
    hourly_rate_micros: int = 0
    is_cpu: bool = False


@dataclass(frozen=True)
class TrainingShape:
    method: str  # lora | qlora | full | prompt_tuning
    micro_batch_size: int
    max_seq_length: int
    lora_r: int = 16
    target_modules: Sequence[str] = ("q_proj", "v_proj")
    num_virtual_tokens: int = 20
    gpu_count: int = 1


@dataclass(frozen=True)
class VramBreakdown:
    weights: int
    trainable_params: int
    adapter: int
    gradients: int
    optimizer: int
    activations: int
    logits: int
    ddp_buckets: int
    cuda_context: int
    fragmentation: int

    @property
    def total(self) -> int:
        return (
            self.weights
            + self.adapter
            + self.gradients
            + self.optimizer
            + self.activations
            + self.logits
            + self.ddp_buckets
            + self.cuda_context
            + self.fragmentation
        )


@dataclass(frozen=True)
class Plan:
    """The planner's answer for one model on one GPU type."""

    requested_method: str
    method: str  # what will run: auto resolves to lora or qlora
    fits: bool
    vram_bytes: int
    breakdown: VramBreakdown
    max_micro_batch: int  # 0 when even a micro-batch of 1 does not fit
    micro_batch_hint: int
    reason: str
    suggestion: str | None = None  # the smallest catalog GPU that fits, when this one doesn't
    alternatives: dict[str, bool] = field(default_factory=dict)

    @property
    def headroom_bytes(self) -> int:
        return self.vram_bytes - self.breakdown.total

    @property
    def quantized(self) -> bool:
        return self.method == "qlora"


def trainable_parameters(arch: ModelArch, shape: TrainingShape) -> int:
    if shape.method == "full":
        return arch.parameter_count
    if shape.method == "prompt_tuning":
        return shape.num_virtual_tokens * arch.hidden_size
    per_layer = sum(shape.lora_r * sum(arch.module_shape(name)) for name in shape.target_modules)
    return arch.num_layers * per_layer


def weight_bytes(arch: ModelArch, method: str) -> int:
    if method == "qlora":
        other = arch.parameter_count - arch.linear_params - arch.embedding_params
        quantized = arch.linear_params * NF4_BITS_PER_PARAM / 8
        return int(quantized + (arch.embedding_params + other) * arch.bytes_per_parameter)
    return arch.parameter_count * arch.bytes_per_parameter


def estimate(arch: ModelArch, shape: TrainingShape, *, on_cpu: bool = False) -> VramBreakdown:
    """Bytes one device needs for this model and training shape."""
    trainable = trainable_parameters(arch, shape)
    weights = weight_bytes(arch, shape.method)
    if shape.method == "full":
        # Weights are the trainable tensors; gradients share their dtype. Mixed precision
        # keeps an fp32 master copy beside 16-bit weights.
        adapter = 0 if arch.bytes_per_parameter >= FP32 else trainable * FP32
        gradients = trainable * arch.bytes_per_parameter
    else:
        adapter = trainable * FP32
        gradients = trainable * FP32
    optimizer = trainable * ADAM_STATE_BYTES
    tokens = shape.micro_batch_size * (
        shape.max_seq_length + (shape.num_virtual_tokens if shape.method == "prompt_tuning" else 0)
    )
    act_bytes = 2 if arch.bytes_per_parameter < FP32 else FP32
    # Checkpointed layer inputs for every layer, plus one layer recomputed in full.
    activations = tokens * arch.hidden_size * act_bytes * arch.num_layers
    activations += tokens * arch.hidden_size * ACTIVATION_BYTES_PER_HIDDEN * act_bytes // 2
    # fp32 logits and their gradient.
    logits = tokens * arch.vocab_size * FP32 * 2
    ddp_buckets = gradients if shape.gpu_count > 1 else 0
    context = 0 if on_cpu else CUDA_CONTEXT_BYTES
    subtotal = weights + adapter + gradients + optimizer + activations + logits + ddp_buckets
    fragmentation = int((subtotal + context) * FRAGMENTATION_MARGIN)
    return VramBreakdown(
        weights=weights,
        trainable_params=trainable,
        adapter=adapter,
        gradients=gradients,
        optimizer=optimizer,
        activations=activations,
        logits=logits,
        ddp_buckets=ddp_buckets,
        cuda_context=context,
        fragmentation=fragmentation,
    )


def _with(shape: TrainingShape, **changes) -> TrainingShape:
    return TrainingShape(**{**shape.__dict__, **changes})


def _fits(arch: ModelArch, shape: TrainingShape, gpu: Gpu) -> bool:
    return estimate(arch, shape, on_cpu=gpu.is_cpu).total <= gpu.vram_bytes


def max_micro_batch(arch: ModelArch, shape: TrainingShape, gpu: Gpu) -> int:
    """The largest micro-batch (up to 64) that fits, or 0 if not even 1 does."""
    low, high = 0, MAX_MICRO_BATCH
    while low < high:  # memory grows with the micro-batch: binary search
        mid = (low + high + 1) // 2
        if _fits(arch, _with(shape, micro_batch_size=mid), gpu):
            low = mid
        else:
            high = mid - 1
    return low


def resolve_method(arch: ModelArch, shape: TrainingShape, gpu: Gpu) -> str:
    """`auto` is 16-bit LoRA when a micro-batch of 1 fits, else 4-bit QLoRA."""
    if shape.method != "auto":
        return shape.method
    lora = _with(shape, method="lora", micro_batch_size=1)
    return "lora" if _fits(arch, lora, gpu) else "qlora"


def smallest_fitting_gpu(arch: ModelArch, shape: TrainingShape, gpus: Iterable[Gpu]) -> Gpu | None:
    """The catalog GPU with the least memory (then the lowest rate) that fits the job."""
    for gpu in sorted(gpus, key=lambda g: (g.vram_bytes, g.hourly_rate_micros)):
        if gpu.is_cpu:
            continue
        method = resolve_method(arch, _with(shape, micro_batch_size=1), gpu)
        if _fits(arch, _with(shape, method=method, micro_batch_size=1), gpu):
            return gpu
    return None


def plan(arch: ModelArch, shape: TrainingShape, gpu: Gpu, catalog: Iterable[Gpu] = ()) -> Plan:
    """Decide the method and the micro-batch hint for `shape` on `gpu`."""
    method = resolve_method(arch, shape, gpu)
    resolved = _with(shape, method=method)
    largest = max_micro_batch(arch, resolved, gpu)
    hint = min(shape.micro_batch_size, largest)
    breakdown = estimate(arch, _with(resolved, micro_batch_size=max(hint, 1)), on_cpu=gpu.is_cpu)
    fits = largest >= 1
    gib = gpu.vram_bytes / GIB
    if not fits:
        better = smallest_fitting_gpu(arch, shape, catalog)
        return Plan(
            requested_method=shape.method,
            method=method,
            fits=False,
            vram_bytes=gpu.vram_bytes,
            breakdown=breakdown,
            max_micro_batch=0,
            micro_batch_hint=0,
            suggestion=better.slug if better else None,
            reason=(
                f"Does not fit: even 4-bit QLoRA with a micro-batch of 1 needs "
                f"{breakdown.total / GIB:.1f} GiB of the {gib:.0f} GiB available."
                if method == "qlora"
                else f"Does not fit: {method} with a micro-batch of 1 needs "
                f"{breakdown.total / GIB:.1f} GiB of the {gib:.0f} GiB available."
            ),
        )
    if shape.method == "auto" and method == "qlora":
        reason = (
            "The base in 16-bit would not fit this GPU, so its weights are quantised to 4-bit "
            "NF4 (double quantisation) and the LoRA adapter trains in full precision on top."
        )
    elif shape.method == "auto":
        reason = "The base fits this GPU in 16-bit: no quantisation needed."
    else:
        reason = f"{method} as chosen."
    if hint < shape.micro_batch_size:
        reason += f" The micro-batch starts at {hint} (the most that fits)."
    return Plan(
        requested_method=shape.method,
        method=method,
        fits=True,
        vram_bytes=gpu.vram_bytes,
        breakdown=breakdown,
        max_micro_batch=largest,
        micro_batch_hint=hint,
        reason=reason,
    )
