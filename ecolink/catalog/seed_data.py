"""The catalog `seed_catalog` installs: real architecture numbers from each model's config."""

# fmt: off
# (hf_id, display name, family, params, layers, hidden, intermediate, heads, kv heads,
#  vocab, context, tied embeddings)
BASE_MODELS = [
    ("meta-llama/Llama-3.2-1B-Instruct", "Llama 3.2 1B Instruct", "llama",
     1_235_814_400, 16, 2048, 8192, 32, 8, 128256, 131072, True),
    ("meta-llama/Llama-3.2-3B-Instruct", "Llama 3.2 3B Instruct", "llama",
     3_212_749_824, 28, 3072, 8192, 24, 8, 128256, 131072, True),
    ("meta-llama/Llama-3.1-8B-Instruct", "Llama 3.1 8B Instruct", "llama",
     8_030_261_248, 32, 4096, 14336, 32, 8, 128256, 131072, False),
    ("meta-llama/Llama-3.3-70B-Instruct", "Llama 3.3 70B Instruct", "llama",
     70_553_706_496, 80, 8192, 28672, 64, 8, 128256, 131072, False),
    ("mistralai/Mistral-7B-Instruct-v0.3", "Mistral 7B Instruct v0.3", "mistral",
     7_248_023_552, 32, 4096, 14336, 32, 8, 32768, 32768, False),
    ("Qwen/Qwen2.5-0.5B-Instruct", "Qwen2.5 0.5B Instruct", "qwen",
     494_032_768, 24, 896, 4864, 14, 2, 151936, 32768, True),
    ("Qwen/Qwen2.5-1.5B-Instruct", "Qwen2.5 1.5B Instruct", "qwen",
     1_543_714_304, 28, 1536, 8960, 12, 2, 151936, 32768, True),
    ("Qwen/Qwen2.5-3B-Instruct", "Qwen2.5 3B Instruct", "qwen",
     3_085_938_688, 36, 2048, 11008, 16, 2, 151936, 32768, True),
    ("Qwen/Qwen2.5-7B-Instruct", "Qwen2.5 7B Instruct", "qwen",
     7_615_616_512, 28, 3584, 18944, 28, 4, 152064, 32768, False),
    ("Qwen/Qwen2.5-14B-Instruct", "Qwen2.5 14B Instruct", "qwen",
     14_770_033_664, 48, 5120, 13824, 40, 8, 152064, 32768, False),
    ("deepseek-ai/DeepSeek-R1-Distill-Qwen-1.5B", "DeepSeek-R1-Distill-Qwen 1.5B", "deepseek",
     1_777_088_000, 28, 1536, 8960, 12, 2, 151936, 131072, False),
    ("deepseek-ai/DeepSeek-R1-Distill-Qwen-14B", "DeepSeek-R1-Distill-Qwen 14B", "deepseek",
     14_770_033_664, 48, 5120, 13824, 40, 8, 152064, 131072, False),
    ("microsoft/Phi-3.5-mini-instruct", "Phi-3.5 mini Instruct", "phi",
     3_821_079_552, 32, 3072, 8192, 32, 32, 32064, 131072, False),
    ("google/gemma-2-9b-it", "Gemma 2 9B Instruct", "gemma",
     9_241_705_984, 42, 3584, 14336, 16, 8, 256000, 8192, True),
]

# Inference prices in micro-dollars per million (input, output) tokens, by the largest
# parameter count they apply to; `inference_rates` picks a base model's pair.
INFERENCE_RATES_BY_SIZE = [
    (1_000_000_000, 50_000, 100_000),
    (4_000_000_000, 100_000, 300_000),
    (10_000_000_000, 200_000, 600_000),
    (20_000_000_000, 400_000, 1_200_000),
    (None, 900_000, 2_700_000),
]


def inference_rates(parameter_count: int) -> dict[str, int]:
    """The BaseModel rate fields for a model of this size."""
    rate_in, rate_out = next(
        (i, o) for limit, i, o in INFERENCE_RATES_BY_SIZE
        if limit is None or parameter_count <= limit
    )
    return {
        "inference_input_micros_per_million": rate_in,
        "inference_output_micros_per_million": rate_out,
    }


# (slug, display name, GiB per device, $/hour in micro-dollars, peak dense bf16 TFLOP/s)
GPU_TYPES = [
    ("cpu", "Local CPU", 16, 600_000, 0.5),
    ("nvidia-t4-16gb", "NVIDIA T4 16 GB", 16, 590_000, 65.0),
    ("nvidia-l4-24gb", "NVIDIA L4 24 GB", 24, 800_000, 121.0),
    ("nvidia-a10g-24gb", "NVIDIA A10G 24 GB", 24, 1_210_000, 70.0),
    ("nvidia-a100-40gb", "NVIDIA A100 40 GB", 40, 1_890_000, 312.0),
    ("nvidia-a100-80gb", "NVIDIA A100 80 GB", 80, 2_490_000, 312.0),
    ("nvidia-h100-80gb", "NVIDIA H100 80 GB", 80, 3_990_000, 989.0),
]

# Fixed phases on the local CPU backend: no image to pull but a Python process to start
# (importing torch), a tiny model to load. Measured on a 2-core machine.
CPU_OVERHEADS = dict(
    image_pull_seconds=5,
    model_load_seconds=10,
    model_load_seconds_per_gb=4,
    dataset_prep_seconds=3,
    evaluation_seconds=5,
    register_seconds=2,
)

# Share of peak bf16 TFLOP/s reached by each method, before any observed run refines it.
# QLoRA pays for dequantising the 4-bit weights on every matmul.
DEFAULT_EFFICIENCY = {"lora": 0.35, "qlora": 0.25, "full": 0.40, "prompt_tuning": 0.35}
# The CPU's "peak" is nominal; measured on the tiny model, a laptop core gets little of it.
CPU_EFFICIENCY = {"lora": 0.02, "qlora": 0.01, "full": 0.02, "prompt_tuning": 0.02}

# (slug, display name, {gpu slug: devices})
REGIONS = [
    ("local", "Local machine", {"cpu": 2}),
    ("eu-west", "EU West", {"nvidia-t4-16gb": 16, "nvidia-l4-24gb": 16, "nvidia-a10g-24gb": 8,
                            "nvidia-a100-40gb": 8, "nvidia-a100-80gb": 8, "nvidia-h100-80gb": 8}),
    ("us-east", "US East", {"nvidia-t4-16gb": 32, "nvidia-l4-24gb": 16, "nvidia-a10g-24gb": 16,
                            "nvidia-a100-80gb": 16, "nvidia-h100-80gb": 16}),
]
# fmt: on
