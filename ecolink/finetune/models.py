"""Fine-tuning jobs and the wizard drafts they are approved from."""

import uuid

from django.conf import settings
from django.db import models

from ecolink.accounts.models import OrgOwned


class Job(OrgOwned):
    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"
        STARTING = "starting", "Starting"
        TRAINING = "training", "Training"
        EVALUATING = "evaluating", "Evaluating"
        TRAINED_PENDING_REGISTER = "trained_pending_register", "Registering"
        REGISTERED = "registered", "Registered"
        PAUSING = "pausing", "Pausing"
        PAUSED = "paused", "Paused"
        CANCELLING = "cancelling", "Cancelling"
        CANCELLED = "cancelled", "Cancelled"
        FAILED = "failed", "Failed"

    class Method(models.TextChoices):
        LORA = "lora", "LoRA (16-bit)"
        QLORA = "qlora", "QLoRA (4-bit NF4)"
        FULL = "full", "Full fine-tuning"
        PROMPT_TUNING = "prompt_tuning", "Prompt tuning"

    class Objective(models.TextChoices):
        SFT = "sft", "Supervised fine-tuning"
        DPO = "dpo", "Direct preference optimisation"

    name = models.CharField(max_length=200)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, related_name="+"
    )
    # One job per approved draft: a double submit finds the job the first one made.
    draft_token = models.UUIDField(unique=True, default=uuid.uuid4)
    dataset = models.ForeignKey("datasets.Dataset", on_delete=models.PROTECT, related_name="jobs")
    base_model = models.ForeignKey("catalog.BaseModel", on_delete=models.PROTECT)
    gpu_type = models.ForeignKey("catalog.GpuType", on_delete=models.PROTECT)
    gpu_count = models.PositiveSmallIntegerField(default=1)
    region = models.ForeignKey("catalog.Region", on_delete=models.PROTECT)
    requested_method = models.CharField(max_length=20, default="auto")
    method = models.CharField(max_length=20, choices=Method.choices)
    objective = models.CharField(max_length=10, choices=Objective.choices, default="sft")
    # What the user submitted, and the full trainer config rendered from it.
    hyperparameters = models.JSONField(default=dict)
    run_config = models.JSONField(default=dict)
    # The planner's reasoning shown on the job page (method decision, micro-batch hint).
    plan_summary = models.CharField(max_length=500, blank=True)
    total_steps = models.PositiveIntegerField(default=0)
    estimate_low_micros = models.BigIntegerField(default=0)
    estimate_high_micros = models.BigIntegerField(default=0)
    estimate_seconds_low = models.PositiveIntegerField(default=0)
    estimate_seconds_high = models.PositiveIntegerField(default=0)
    status = models.CharField(max_length=32, choices=Status.choices, default=Status.QUEUED)
    status_reason = models.CharField(max_length=300, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    # --- The current pod run. A new token per run: a stale pod's events are refused.
    run_number = models.PositiveSmallIntegerField(default=0)
    pod_name = models.CharField(max_length=120, blank=True)
    job_token_hash = models.CharField(max_length=64, blank=True)
    stop_requested_at = models.DateTimeField(null=True, blank=True)
    # --- Progress, kept on the row so list and polling views read one row.
    current_step = models.PositiveIntegerField(default=0)
    latest_loss = models.FloatField(null=True, blank=True)
    trained_tokens = models.BigIntegerField(default=0)
    # The latest complete checkpoint the trainer reported; resume starts from it.
    checkpoint_path = models.CharField(max_length=500, blank=True)
    checkpoint_step = models.PositiveIntegerField(default=0)
    # --- How it ended.
    pause_reason = models.CharField(max_length=20, blank=True)  # "balance" | "user"
    error_class = models.CharField(max_length=20, blank=True)
    log_tail = models.TextField(blank=True)
    adapter_path = models.CharField(max_length=500, blank=True)
    manifest_path = models.CharField(max_length=500, blank=True)
    final_metrics = models.JSONField(default=dict, blank=True)
    # Cancelled jobs keep their last adapter or checkpoint until then.
    retention_until = models.DateTimeField(null=True, blank=True)
    automatic_retries = models.PositiveSmallIntegerField(default=0)

    class Meta:
        ordering = ["-created_at"]
        indexes = [
            models.Index(fields=["organization", "-created_at"]),
            models.Index(fields=["status"]),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.status})"


class JobEvent(models.Model):
    """What happened to a job: its transitions and what its trainer reported.

    Trainer events carry (run_id, seq); the unique constraint drops a retried batch.
    """

    job = models.ForeignKey(Job, on_delete=models.CASCADE, related_name="events")
    kind = models.CharField(max_length=20)  # status | started | phase | checkpoint | ...
    message = models.CharField(max_length=500, blank=True)
    data = models.JSONField(default=dict, blank=True)
    run_id = models.CharField(max_length=64, blank=True)
    seq = models.PositiveIntegerField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["created_at", "id"]
        constraints = [
            models.UniqueConstraint(
                fields=["job", "run_id", "seq"],
                condition=models.Q(seq__isnull=False),
                name="one_trainer_event_per_seq",
            )
        ]

    def __str__(self) -> str:
        return f"{self.job_id} {self.kind}: {self.message}"


class JobMetric(models.Model):
    """One point of a job's charts: training metrics per logged step, eval per evaluation."""

    class Kind(models.TextChoices):
        TRAIN = "train", "Training"
        EVAL = "eval", "Evaluation"

    job = models.ForeignKey(Job, on_delete=models.CASCADE, related_name="metrics")
    kind = models.CharField(max_length=8, choices=Kind.choices)
    step = models.PositiveIntegerField()
    loss = models.FloatField(null=True, blank=True)
    learning_rate = models.FloatField(null=True, blank=True)
    grad_norm = models.FloatField(null=True, blank=True)
    tokens_per_second = models.FloatField(null=True, blank=True)
    samples_per_second = models.FloatField(null=True, blank=True)
    memory_bytes = models.BigIntegerField(null=True, blank=True)
    perplexity = models.FloatField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["kind", "step"]
        constraints = [
            models.UniqueConstraint(fields=["job", "kind", "step"], name="one_metric_per_step")
        ]

    def __str__(self) -> str:
        return f"{self.job_id} {self.kind} step {self.step}"


class WizardDraft(OrgOwned):
    """What a user has entered in the wizard so far, kept server-side so that back,
    forward and reload lose nothing. Approving it creates one job."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    token = models.UUIDField(unique=True, default=uuid.uuid4)
    data = models.JSONField(default=dict)
    job = models.OneToOneField(Job, null=True, blank=True, on_delete=models.SET_NULL)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-updated_at"]
