from django.contrib import admin

from ecolink.billing.models import LedgerEntry


@admin.register(LedgerEntry)
class LedgerEntryAdmin(admin.ModelAdmin):
    """Read-only: the ledger is append-only, corrections are new entries."""

    list_display = [
        "created_at",
        "organization",
        "kind",
        "amount_micros",
        "balance_after_micros",
        "key",
    ]
    list_filter = ["kind"]
    search_fields = ["key", "organization__name", "description"]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
