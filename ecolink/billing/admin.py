"""Money in the operator console: everything here is read-only. The ledger is append-only
and a correction is a new entry, made through the audited adjustment form on the
organization's page (`ops.admin`)."""

from typing import Any

from django.contrib import admin
from django.db.models import Model
from django.http import HttpRequest

from ecolink.billing.models import BillingSession, LedgerEntry, StripeEvent
from ecolink.billing.money import dollars


class ReadOnlyAdmin(admin.ModelAdmin):  # type: ignore[type-arg]  # one base for several models
    """No add, change or delete permission for anyone, superusers included."""

    actions = None

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:
        return [f.name for f in self.model._meta.fields]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return False


@admin.register(LedgerEntry)
class LedgerEntryAdmin(ReadOnlyAdmin):
    list_display = ["created_at", "organization", "kind", "amount", "balance_after", "job", "key"]
    list_filter = ["kind", "created_at", ("organization", admin.RelatedOnlyFieldListFilter)]
    search_fields = ["key", "organization__name", "organization__slug", "description"]
    date_hierarchy = "created_at"
    list_select_related = ["organization", "job"]

    @admin.display(description="amount", ordering="amount_micros")
    def amount(self, obj: LedgerEntry) -> str:
        return dollars(obj.amount_micros)

    @admin.display(description="balance after", ordering="balance_after_micros")
    def balance_after(self, obj: LedgerEntry) -> str:
        return dollars(obj.balance_after_micros)


@admin.register(BillingSession)
class BillingSessionAdmin(ReadOnlyAdmin):
    list_display = [
        "job",
        "run",
        "organization",
        "gpu_type",
        "gpu_count",
        "started_at",
        "ended_at",
        "charged_minutes",
        "charged",
    ]
    list_filter = ["gpu_type", ("ended_at", admin.EmptyFieldListFilter)]
    search_fields = ["job__name", "organization__name"]
    list_select_related = ["job", "organization", "gpu_type"]

    @admin.display(description="charged", ordering="charged_micros")
    def charged(self, obj: BillingSession) -> str:
        return dollars(obj.charged_micros)


@admin.register(StripeEvent)
class StripeEventAdmin(ReadOnlyAdmin):
    list_display = ["received_at", "event_id", "type", "organization", "amount", "result"]
    list_filter = ["result", "type"]
    search_fields = ["event_id", "checkout_session_id", "organization__name"]
    date_hierarchy = "received_at"
    list_select_related = ["organization"]

    @admin.display(description="amount", ordering="amount_micros")
    def amount(self, obj: StripeEvent) -> str:
        return dollars(obj.amount_micros) if obj.amount_micros is not None else "—"
