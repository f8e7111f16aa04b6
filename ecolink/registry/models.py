"""Registered adapters (what a finished job produced, with its full lineage), the model
instances that serve them, deployments attaching one to the other, and Hub exports."""

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
    # Set by "Delete": the files are gone and it can't be deployed; the row stays for
    # lineage and because the ledger keeps referring to its job.
    deleted_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return self.model_id


class ModelInstance(models.Model):
    """A running inference server for one base model, to which LoRA adapters attach.

    Platform-wide (not owned by an organization): adapters of several organizations may
    share one instance; a `Deployment` says which are attached and who owns them.
    """

    class Backend(models.TextChoices):
        LOCAL = "local", "Local (transformers + peft)"
        VLLM = "vllm", "vLLM"

    class Status(models.TextChoices):
        STARTING = "starting", "Starting"
        RUNNING = "running", "Running"
        STOPPED = "stopped", "Stopped"
        FAILED = "failed", "Failed"

    name = models.CharField(max_length=100, unique=True)
    base_model = models.ForeignKey(
        "catalog.BaseModel", on_delete=models.PROTECT, related_name="instances"
    )
    backend = models.CharField(max_length=16, choices=Backend.choices, default=Backend.LOCAL)
    # Root of the server's OpenAI-compatible API, e.g. `http://127.0.0.1:8100` (no /v1).
    endpoint_url = models.CharField(max_length=300)
    # The name the server serves the bare base model under (vLLM's --served-model-name).
    served_model_name = models.CharField(max_length=200)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.STARTING)
    status_message = models.CharField(max_length=300, blank=True)
    # How many LoRA adapters the server holds at once (vLLM's --max-loras).
    max_adapters = models.PositiveIntegerField(default=8)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["base_model_id", "name"]
        constraints = [
            # The instance a deploy attaches to must be unambiguous.
            models.UniqueConstraint(
                fields=["base_model"],
                condition=models.Q(status="running"),
                name="one_running_instance_per_base",
            )
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.get_backend_display()}, {self.status})"


class Deployment(OrgOwned):
    """One adapter attached to one model instance; `deployed` rows route traffic."""

    class Status(models.TextChoices):
        ATTACHING = "attaching", "Attaching"
        DEPLOYED = "deployed", "Deployed"
        DETACHED = "detached", "Detached"
        FAILED = "failed", "Failed"

    LIVE = (Status.ATTACHING, Status.DEPLOYED)

    adapter = models.ForeignKey(
        RegisteredAdapter, on_delete=models.PROTECT, related_name="deployments"
    )
    instance = models.ForeignKey(
        ModelInstance, on_delete=models.PROTECT, related_name="deployments"
    )
    # The LoRA name the instance knows this adapter by (vLLM's lora_name).
    served_name = models.CharField(max_length=100)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.ATTACHING)
    error = models.CharField(max_length=500, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    deployed_at = models.DateTimeField(null=True, blank=True)
    detached_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["adapter"],
                condition=models.Q(status__in=["attaching", "deployed"]),
                name="one_live_deployment_per_adapter",
            )
        ]

    def __str__(self) -> str:
        return f"{self.adapter} on {self.instance.name} ({self.status})"


class HubExport(OrgOwned):
    """A push of an adapter (or its merged model) to the Hugging Face Hub. The user's
    token is never part of it."""

    class Status(models.TextChoices):
        PUSHED = "pushed", "Pushed"
        FAILED = "failed", "Failed"
        REFUSED = "refused", "Refused (merge check failed)"

    adapter = models.ForeignKey(RegisteredAdapter, on_delete=models.CASCADE, related_name="exports")
    repo_id = models.CharField(max_length=200)
    merged = models.BooleanField(default=False)
    status = models.CharField(max_length=16, choices=Status.choices)
    commit_url = models.CharField(max_length=500, blank=True)
    # For a merged export: the largest |logit difference| merged vs base+adapter.
    max_logit_diff = models.FloatField(null=True, blank=True)
    error = models.CharField(max_length=500, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.adapter} → {self.repo_id} ({self.status})"
