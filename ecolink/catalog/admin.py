"""The catalog in the operator console: the base-model allow-list, GPU types with their
rates, overheads and efficiencies, regions and their capacity.

A GPU type's rate and overhead constants are the very ones the estimator prices with and
the meter charges with. The meter reads the rate when it charges a minute, so a change
applies to minutes charged after it; past ledger entries never change. A rate change
needs a reason and is recorded in the audit log.
"""

from django import forms
from django.contrib import admin
from django.db import transaction

from ecolink.billing.money import dollars
from ecolink.catalog.models import BaseModel, GpuType, Region, RegionCapacity, ThroughputEfficiency
from ecolink.ops.services import gpu_rate_change


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
    fieldsets = [
        (None, {"fields": ["hf_id", "display_name", "family", "local_path"]}),
        (
            "Allow-list",
            {"fields": ["allowed", "fine_tune_eligible", "has_active_deployment"]},
        ),
        (
            "Inference price (micro-dollars per million tokens)",
            {
                "fields": [
                    (
                        "inference_input_micros_per_million",
                        "inference_output_micros_per_million",
                    )
                ]
            },
        ),
        (
            "Architecture (the VRAM planner and the estimator read these)",
            {
                "fields": [
                    "parameter_count",
                    ("num_layers", "hidden_size", "intermediate_size"),
                    ("num_attention_heads", "num_kv_heads"),
                    ("vocab_size", "context_length"),
                    ("tie_word_embeddings", "bytes_per_parameter"),
                ]
            },
        ),
    ]


class ThroughputEfficiencyInline(admin.TabularInline):
    model = ThroughputEfficiency
    extra = 0
    fields = ["method", "efficiency", "updated_at"]
    readonly_fields = ["updated_at"]
    verbose_name_plural = (
        "estimator efficiency per method (share of peak; see Ops › Observed throughput)"
    )


class GpuTypeForm(forms.ModelForm):
    rate_change_reason = forms.CharField(
        required=False,
        widget=forms.Textarea(attrs={"rows": 2, "cols": 60}),
        help_text="Required when the hourly rate changes; recorded in the audit log.",
    )

    class Meta:
        model = GpuType
        fields = ["hourly_rate_micros"]  # the admin adds the rest from its fieldsets

    def clean(self):
        data = super().clean()
        rate_changed = self.instance.pk and "hourly_rate_micros" in self.changed_data
        if rate_changed and not (data.get("rate_change_reason") or "").strip():
            self.add_error("rate_change_reason", "Give a reason for the rate change.")
        return data


@admin.register(GpuType)
class GpuTypeAdmin(admin.ModelAdmin):
    form = GpuTypeForm
    list_display = ["display_name", "slug", "vram_gb", "rate", "peak_bf16_tflops", "max_count"]
    search_fields = ["slug", "display_name"]
    inlines = [ThroughputEfficiencyInline]
    fieldsets = [
        (None, {"fields": ["slug", "display_name", "vram_gb", "is_cpu", "max_count"]}),
        (
            "Price and speed",
            {
                "fields": ["hourly_rate_micros", "rate_change_reason", "peak_bf16_tflops"],
                "description": "The rate is per device-hour in micro-dollars. A change "
                "applies to minutes charged from now on; past ledger entries keep theirs.",
            },
        ),
        (
            "Overheads (added by the estimator and billed by the meter)",
            {
                "fields": [
                    "image_pull_seconds",
                    "model_load_seconds",
                    "model_load_seconds_per_gb",
                    "dataset_prep_seconds",
                    "evaluation_seconds",
                    "register_seconds",
                ]
            },
        ),
    ]

    @admin.display(description="hourly rate", ordering="hourly_rate_micros")
    def rate(self, obj: GpuType) -> str:
        return dollars(obj.hourly_rate_micros)

    def has_delete_permission(self, request, obj=None):
        return False  # jobs and billing sessions point at it

    @transaction.atomic
    def save_model(self, request, obj, form, change):
        if change and "hourly_rate_micros" in form.changed_data:
            new_rate = obj.hourly_rate_micros
            obj.hourly_rate_micros = form.initial["hourly_rate_micros"]
            super().save_model(request, obj, form, change)
            gpu_rate_change(
                operator=request.user,
                gpu_type_id=obj.pk,
                hourly_rate_micros=new_rate,
                reason=form.cleaned_data["rate_change_reason"],
            )
            obj.hourly_rate_micros = new_rate
            return
        super().save_model(request, obj, form, change)


class RegionCapacityInline(admin.TabularInline):
    model = RegionCapacity
    extra = 0


@admin.register(Region)
class RegionAdmin(admin.ModelAdmin):
    list_display = ["display_name", "slug"]
    inlines = [RegionCapacityInline]


@admin.register(RegionCapacity)
class RegionCapacityAdmin(admin.ModelAdmin):
    list_display = ["region", "gpu_type", "total_gpus"]
    list_filter = ["region", "gpu_type"]
    list_editable = ["total_gpus"]
    list_select_related = ["region", "gpu_type"]


@admin.register(ThroughputEfficiency)
class ThroughputEfficiencyAdmin(admin.ModelAdmin):
    list_display = ["gpu_type", "method", "efficiency", "updated_at"]
    list_filter = ["method", "gpu_type"]
    list_select_related = ["gpu_type"]
