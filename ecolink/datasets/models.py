"""Uploaded datasets: the raw file, its detected format, and what validation found."""

from django.conf import settings
from django.db import models

from ecolink.accounts.models import OrgOwned


class Dataset(OrgOwned):
    class Status(models.TextChoices):
        UPLOADED = "uploaded", "Uploaded"
        VALIDATING = "validating", "Validating"
        READY = "ready_for_training", "Ready to train"
        INVALID = "invalid", "Invalid"

    class Format(models.TextChoices):
        AUTO = "auto", "Detect automatically"
        TEXT = "text", "Plain text JSONL"
        ALPACA = "alpaca", "Alpaca"
        SHAREGPT = "sharegpt", "ShareGPT"
        OPENAI = "openai", "OpenAI chat"
        PROMPT_COMPLETION = "prompt_completion", "Prompt / completion"
        PREFERENCE = "preference", "Preference pairs (DPO)"
        CSV = "csv", "CSV"
        PARQUET = "parquet", "Parquet"

    FINAL_STATUSES = (Status.READY, Status.INVALID)

    name = models.CharField(max_length=200)
    # The name the user's file had, sanitised; never used as a path.
    original_filename = models.CharField(max_length=255)
    # Storage key of the raw upload.
    file = models.CharField(max_length=500)
    size_bytes = models.BigIntegerField(default=0)
    # The user's choice at upload ("auto" or a format); validation replaces it with the
    # format it read the file as.
    format = models.CharField(max_length=32, choices=Format.choices, default=Format.AUTO)
    status = models.CharField(max_length=32, choices=Status.choices, default=Status.UPLOADED)
    # Column mapping for prompt/completion rows (JSONL, CSV, Parquet); blank = defaults.
    prompt_column = models.CharField(max_length=200, blank=True)
    answer_column = models.CharField(max_length=200, blank=True)
    # An optional separate validation file (storage key and sanitised name); when set, the
    # main file is split train/test only.
    validation_source = models.CharField(max_length=500, blank=True)
    validation_source_filename = models.CharField(max_length=255, blank=True)
    split_seed = models.PositiveIntegerField(default=42)
    # Examples longer than this many tokens are counted in the report.
    max_seq_length = models.PositiveIntegerField(default=2048)
    # Hugging Face id of the catalog base model whose local tokenizer counts tokens;
    # blank = the tiny local model.
    tokenizer_model = models.CharField(max_length=200, blank=True)
    uploaded_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    # Filled by validation.
    example_count = models.PositiveIntegerField(default=0)
    # Tokens in the training split, counted with the tokenizer validation used.
    token_count = models.BigIntegerField(default=0)
    # True when the records are prompt/chosen/rejected pairs (enables DPO).
    is_preference = models.BooleanField(default=False)
    # SHA-256 of the uploaded bytes (main file, then the validation file if any).
    content_hash = models.CharField(max_length=64, blank=True)
    # Storage keys of the normalised JSONL splits the trainer reads; set only when ready.
    train_file = models.CharField(max_length=500, blank=True)
    validation_file = models.CharField(max_length=500, blank=True)
    test_file = models.CharField(max_length=500, blank=True)
    # One line for the list page when invalid; the details are in the report.
    error = models.TextField(blank=True)
    report = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    validated_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return self.name

    @property
    def is_final(self) -> bool:
        return self.status in self.FINAL_STATUSES

    @property
    def is_ready(self) -> bool:
        return self.status == self.Status.READY
