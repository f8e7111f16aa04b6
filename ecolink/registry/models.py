"""Registered adapters: what a finished job produced, with its full lineage."""

from django.db import models

from ecolink.accounts.models import OrgOwned


class RegisteredAdapter(OrgOwned):
    job = models.OneToOneField("finetune.Job", on_delete=models.PROTECT, related_name="adapter")
    # The model id users call it by, e.g. `ft:ecolink/tiny-qwen2:acme:42`.
    model_id = models.CharField(max_length=300, unique=True)
    base_model = models.ForeignKey("catalog.BaseModel", on_delete=models.PROTECT)
    base_model_revision = models.CharField(max_length=100, blank=True)
    dataset = models.ForeignKey("datasets.Dataset", on_delete=models.PROTECT)
    dataset_hash = models.CharField(max_length=64, blank=True)
    method = models.CharField(max_length=20)
    # Every realised hyperparameter, as the trainer's manifest recorded it.
    hyperparameters = models.JSONField(default=dict)
    metrics = models.JSONField(default=dict)
    path = models.CharField(max_length=500)
    manifest = models.JSONField(default=dict)
    promoted = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return self.model_id
