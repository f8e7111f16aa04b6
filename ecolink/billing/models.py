"""The ledger: append-only money history. The balance is the sum of an org's entries."""

from django.db import models

from ecolink.accounts.models import OrgOwned

MICROS_PER_DOLLAR = 1_000_000
MICROS_PER_CENT = 10_000


class LedgerEntry(OrgOwned):
    class Kind(models.TextChoices):
        SIGNUP_CREDIT = "signup_credit", "Signup credit"
        TOPUP = "topup", "Top-up"
        TEST_TOPUP = "test_topup", "Test-mode top-up"
        METER = "meter", "GPU minute"
        INFERENCE = "inference", "Inference tokens"
        SETTLE = "settle", "Settlement"
        ADJUSTMENT = "adjustment", "Adjustment"

    # Unique idempotency key: `stripe:<id>`, `meter:<session>:<minute>`, `settle:<session>`,
    # `adjust:<uuid>` ... A second insert with the same key fails and counts as done.
    key = models.CharField(max_length=200, unique=True)
    kind = models.CharField(max_length=32, choices=Kind.choices)
    # Signed, in micro-dollars: credits are positive, charges negative.
    amount_micros = models.BigIntegerField()
    # The organization's balance right after this entry, for statements.
    balance_after_micros = models.BigIntegerField()
    description = models.CharField(max_length=300, blank=True)
    # The job a charge belongs to (meter and settlement entries), for per-job statements.
    job = models.ForeignKey(
        "finetune.Job", on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name_plural = "ledger entries"
        indexes = [models.Index(fields=["organization", "-created_at"])]

    def __str__(self) -> str:
        return f"{self.key} {self.amount_micros:+d}"


class BillingSession(OrgOwned):
    """One pod run of a job, metered per billing minute from its start to its end.

    Minute k covers [started_at + k·M, started_at + (k+1)·M). The meter charges each
    completed minute once (`meter:<session>:<k>`); when the session ends, the partial
    minute is settled, rounded up (`settle:<session>`).
    """

    job = models.ForeignKey("finetune.Job", on_delete=models.PROTECT, related_name="sessions")
    run = models.PositiveSmallIntegerField()
    gpu_type = models.ForeignKey("catalog.GpuType", on_delete=models.PROTECT)
    gpu_count = models.PositiveSmallIntegerField()
    started_at = models.DateTimeField()
    ended_at = models.DateTimeField(null=True, blank=True)
    charged_minutes = models.PositiveIntegerField(default=0)
    charged_micros = models.BigIntegerField(default=0)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["job", "run"], name="one_session_per_run")]
        indexes = [models.Index(fields=["ended_at"], name="live_sessions")]

    def __str__(self) -> str:
        return f"job {self.job_id} run {self.run}"


class StripeEvent(models.Model):
    """Every Stripe webhook event received, with what handling it did. One row per event id:
    a redelivered event finds its row and is answered 2xx without being handled again."""

    class Result(models.TextChoices):
        CREDITED = "credited", "Credited"
        ALREADY_CREDITED = "already_credited", "Already credited"
        UNPAID = "unpaid", "Not paid yet"
        IGNORED = "ignored", "Ignored (type not handled)"
        ERROR = "error", "Error"

    event_id = models.CharField(max_length=100, unique=True)
    type = models.CharField(max_length=100)
    # The Checkout session the event is about, when it is about one.
    checkout_session_id = models.CharField(max_length=200, blank=True, db_index=True)
    organization = models.ForeignKey(
        "accounts.Organization", on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    amount_micros = models.BigIntegerField(null=True, blank=True)
    result = models.CharField(max_length=32, choices=Result.choices)
    detail = models.CharField(max_length=500, blank=True)
    received_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["-received_at", "-id"]

    def __str__(self) -> str:
        return f"{self.event_id} {self.type}: {self.result}"
