from django.contrib import admin

from ecolink.billing.admin import ReadOnlyAdmin
from ecolink.ops.models import AuditLog


@admin.register(AuditLog)
class AuditLogAdmin(ReadOnlyAdmin):
    """Append-only: rows come from `ops.services`, nobody edits or deletes them."""

    list_display = ["created_at", "operator_name", "action", "target", "organization", "reason"]
    list_filter = ["action", "created_at"]
    search_fields = ["operator_name", "reason", "target_id", "organization__name"]
    date_hierarchy = "created_at"
    list_select_related = ["organization"]

    @admin.display(description="target")
    def target(self, obj: AuditLog) -> str:
        return f"{obj.target_type} #{obj.target_id}"
