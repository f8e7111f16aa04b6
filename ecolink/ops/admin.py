from django.contrib import admin

from ecolink.ops.models import AuditLog


@admin.register(AuditLog)
class AuditLogAdmin(admin.ModelAdmin):
    """Append-only: rows come from `ops.services`, nobody edits or deletes them."""

    list_display = ["created_at", "operator_name", "action", "target", "organization", "reason"]
    list_filter = ["action", "created_at"]
    search_fields = ["operator_name", "reason", "target_id", "organization__name"]
    date_hierarchy = "created_at"
    list_select_related = ["organization"]
    actions = None

    @admin.display(description="target")
    def target(self, obj: AuditLog) -> str:
        return f"{obj.target_type} #{obj.target_id}"

    def get_readonly_fields(self, request, obj=None):
        return [f.name for f in self.model._meta.fields]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
