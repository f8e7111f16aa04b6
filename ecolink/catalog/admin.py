from django.contrib import admin

from ecolink.catalog.models import BaseModel, GpuType, Region, RegionCapacity


@admin.register(BaseModel)
class BaseModelAdmin(admin.ModelAdmin):
    list_display = [
        "display_name",
        "hf_id",
        "family",
        "parameter_count",
        "context_length",
        "allowed",
        "fine_tune_eligible",
        "has_active_deployment",
    ]
    list_filter = ["family", "allowed", "fine_tune_eligible", "has_active_deployment"]
    list_editable = ["allowed", "fine_tune_eligible", "has_active_deployment"]
    search_fields = ["hf_id", "display_name"]


@admin.register(GpuType)
class GpuTypeAdmin(admin.ModelAdmin):
    list_display = ["display_name", "slug", "vram_gb", "hourly_rate_micros", "peak_bf16_tflops"]
    search_fields = ["slug", "display_name"]


class RegionCapacityInline(admin.TabularInline):
    model = RegionCapacity
    extra = 0


@admin.register(Region)
class RegionAdmin(admin.ModelAdmin):
    list_display = ["display_name", "slug"]
    inlines = [RegionCapacityInline]
