"""The operators' audit trail: one row per money or job action an operator takes."""

from django.conf import settings
from django.db import models


class AuditLog(models.Model):
    """Append-only: rows are written by `ops.services` in the same transaction as the
    action they record, and never updated or deleted (the admin shows them read-only)."""

    class Action(models.TextChoices):
        JOB_CANCEL = "job_cancel", "Cancel job"
        JOB_PAUSE = "job_pause", "Pause job"
        JOB_RESUME = "job_resume", "Resume job"
        JOB_MARK_FAILED = "job_mark_failed", "Mark job failed"
        JOB_EXTEND_RETENTION = "job_extend_retention", "Extend retention"
        BALANCE_CREDIT = "balance_credit", "Credit balance"
        BALANCE_DEBIT = "balance_debit", "Debit balance"
        EFFICIENCY_UPDATE = "efficiency_update", "Update throughput efficiency"
        GPU_RATE_CHANGE = "gpu_rate_change", "Change GPU rate"

    # Kept with the name: the row must still say who acted if the account goes.
    operator = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, related_name="+"
    )
    operator_name = models.CharField(max_length=150)
    action = models.CharField(max_length=32, choices=Action.choices)
    # What was acted on, as `app_label.model` and its primary key.
    target_type = models.CharField(max_length=100)
    target_id = models.CharField(max_length=64)
    # The organization concerned, for filtering; none for catalog changes.
    organization = models.ForeignKey(
        "accounts.Organization", on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    reason = models.TextField()
    before = models.JSONField(default=dict, blank=True)
    after = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["target_type", "target_id"])]
        constraints = [
            models.CheckConstraint(condition=~models.Q(reason=""), name="audit_reason_required")
        ]
        permissions = [
            ("view_dashboard", "Can view the operator dashboard"),
            ("operate_job", "Can cancel, pause, resume, fail jobs and extend retention"),
            ("adjust_balance", "Can credit or debit an organization"),
            ("update_efficiency", "Can update the estimator's throughput efficiency"),
        ]

    def __str__(self) -> str:
        return (
            f"{self.operator_name}: {self.get_action_display()} {self.target_type}#{self.target_id}"
        )
