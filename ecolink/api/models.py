"""API keys: org-scoped, shown once, stored hashed, revocable, with a last-used time."""

from django.conf import settings
from django.db import models

from ecolink.accounts.models import OrgOwned


class ApiKey(OrgOwned):
    name = models.CharField(max_length=100)
    # The first characters of the key, to tell keys apart in lists (never the whole key).
    prefix = models.CharField(max_length=16)
    key_hash = models.CharField(max_length=64, unique=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"


class ApiJobRequest(models.Model):
    """What an API caller asked for that the Job row has no column for: the OpenAI fields
    echoed back on the job object (suffix, metadata, seed, validation file, the
    hyperparameters as sent)."""

    job = models.OneToOneField("finetune.Job", on_delete=models.CASCADE, related_name="api_request")
    api_key = models.ForeignKey(ApiKey, on_delete=models.SET_NULL, null=True, related_name="+")
    suffix = models.CharField(max_length=64, blank=True)
    metadata = models.JSONField(default=dict, blank=True)
    seed = models.BigIntegerField(null=True, blank=True)
    validation_dataset = models.ForeignKey(
        "datasets.Dataset", on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    # {"type": "supervised" | "dpo", "hyperparameters": {...}} as the caller sent them.
    method = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"API request for job {self.job_id}"
