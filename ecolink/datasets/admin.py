from django.contrib import admin

from ecolink.datasets.models import Dataset


@admin.register(Dataset)
class DatasetAdmin(admin.ModelAdmin):
    list_display = ("name", "organization", "format", "status", "example_count", "created_at")
    list_filter = ("status", "format")
    search_fields = ("name", "original_filename", "content_hash", "organization__name")
    list_select_related = ("organization",)
    # Status, files and results are the validation's to set; operators read them here.
    readonly_fields = (
        "status",
        "file",
        "size_bytes",
        "validation_source",
        "example_count",
        "token_count",
        "is_preference",
        "content_hash",
        "train_file",
        "validation_file",
        "test_file",
        "error",
        "report",
        "created_at",
        "validated_at",
    )
    raw_id_fields = ("organization", "uploaded_by")
