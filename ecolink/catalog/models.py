"""Operator data: which base models may be tuned, the GPU types, regions and their capacity."""

from django.db import models


class BaseModel(models.Model):
    hf_id = models.CharField("Hugging Face id", max_length=200, unique=True)
    display_name = models.CharField(max_length=200)
    family = models.CharField(max_length=50)
    parameter_count = models.BigIntegerField()
    # Architecture numbers the VRAM planner and the estimator need.
    num_layers = models.PositiveIntegerField()
    hidden_size = models.PositiveIntegerField()
    intermediate_size = models.PositiveIntegerField()
    num_attention_heads = models.PositiveIntegerField()
    num_kv_heads = models.PositiveIntegerField()
    vocab_size = models.PositiveIntegerField()
    context_length = models.PositiveIntegerField()
    tie_word_embeddings = models.BooleanField(default=False)
    # Bytes per parameter of the weights as published (2 for bf16/fp16, 4 for fp32).
    bytes_per_parameter = models.PositiveSmallIntegerField(default=2)
    # On the allow-list: a job may name it at all.
    allowed = models.BooleanField(default=True)
    fine_tune_eligible = models.BooleanField(default=True)
    has_active_deployment = models.BooleanField(default=False)
    # A folder with the weights on local disk; the trainer loads from here instead of the Hub.
    local_path = models.CharField(max_length=500, blank=True)
    # Inference through /v1/chat/completions, in micro-dollars per million tokens; the
    # ledger is charged ceil((prompt x input + completion x output) / 1M) per request.
    inference_input_micros_per_million = models.BigIntegerField(default=200_000)
    inference_output_micros_per_million = models.BigIntegerField(default=600_000)

    class Meta:
        ordering = ["family", "parameter_count"]

    def __str__(self) -> str:
        return self.display_name


class GpuType(models.Model):
    slug = models.SlugField(max_length=60, unique=True)
    display_name = models.CharField(max_length=100)
    # Memory per device in GiB. For the `cpu` type, the memory a local run may use.
    vram_gb = models.PositiveIntegerField()
    # Price of one device for one hour, in micro-dollars; the meter charges this rate.
    hourly_rate_micros = models.BigIntegerField()
    peak_bf16_tflops = models.FloatField()
    is_cpu = models.BooleanField(default=False)
    max_count = models.PositiveSmallIntegerField(default=8)
    # Fixed phases of a pod run, in seconds: the estimator adds them, and the meter bills the
    # pod for them like any other minute. Model load also grows with the weights' size.
    image_pull_seconds = models.PositiveIntegerField(default=120)
    model_load_seconds = models.PositiveIntegerField(default=30)
    model_load_seconds_per_gb = models.PositiveIntegerField(default=4)
    dataset_prep_seconds = models.PositiveIntegerField(default=30)
    evaluation_seconds = models.PositiveIntegerField(default=60)
    register_seconds = models.PositiveIntegerField(default=5)

    class Meta:
        ordering = ["hourly_rate_micros"]

    def __str__(self) -> str:
        return self.display_name


class Region(models.Model):
    slug = models.SlugField(max_length=60, unique=True)
    display_name = models.CharField(max_length=100)

    class Meta:
        ordering = ["slug"]

    def __str__(self) -> str:
        return self.display_name


class RegionCapacity(models.Model):
    """How many devices of one GPU type a region has in all."""

    region = models.ForeignKey(Region, on_delete=models.CASCADE, related_name="capacities")
    gpu_type = models.ForeignKey(GpuType, on_delete=models.CASCADE, related_name="capacities")
    total_gpus = models.PositiveIntegerField()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["region", "gpu_type"], name="one_capacity_per_gpu")
        ]
        verbose_name_plural = "region capacities"

    def __str__(self) -> str:
        return f"{self.region}: {self.total_gpus} × {self.gpu_type}"


class ThroughputEfficiency(models.Model):
    """Share of a GPU's peak bf16 TFLOP/s that training reaches, per method.

    Kept as data so that observed runs can refine it; the estimator falls back to
    `DEFAULT_EFFICIENCY` when a pair has no row.
    """

    gpu_type = models.ForeignKey(GpuType, on_delete=models.CASCADE, related_name="efficiencies")
    method = models.CharField(max_length=20)
    efficiency = models.FloatField()
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["gpu_type", "method"], name="one_efficiency_per_method")
        ]
        verbose_name_plural = "throughput efficiencies"

    def __str__(self) -> str:
        return f"{self.gpu_type.slug} {self.method}: {self.efficiency:.0%}"
