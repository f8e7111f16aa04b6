"""Registered models, model instances, deployments and Hub exports in the operator console.

Deployments change only through the services (deploy, undeploy), so they are read-only here;
an operator registers or stops instances.
"""

from django.contrib import admin

from ecolink.registry.models import Deployment, HubExport, ModelInstance, RegisteredAdapter


@admin.register(RegisteredAdapter)
class RegisteredAdapterAdmin(admin.ModelAdmin):
    list_display = ["model_id", "organization", "base_model", "method", "created_at", "deleted_at"]
    list_filter = ["method", "base_model"]
    search_fields = ["model_id", "organization__name"]
    readonly_fields = [f.name for f in RegisteredAdapter._meta.fields]

    def has_add_permission(self, request):
        return False


class DeploymentInline(admin.TabularInline):
    model = Deployment
    fields = readonly_fields = ("adapter", "organization", "served_name", "status", "deployed_at")
    extra = 0
    can_delete = False

    def has_add_permission(self, request, obj=None):
        return False

    def get_queryset(self, request):
        return super().get_queryset(request).filter(status__in=Deployment.LIVE)


@admin.register(ModelInstance)
class ModelInstanceAdmin(admin.ModelAdmin):
    list_display = [
        "name",
        "base_model",
        "backend",
        "endpoint_url",
        "status",
        "max_adapters",
        "updated_at",
    ]
    list_filter = ["backend", "status"]
    inlines = [DeploymentInline]


@admin.register(Deployment)
class DeploymentAdmin(admin.ModelAdmin):
    list_display = ["adapter", "organization", "instance", "status", "deployed_at", "detached_at"]
    list_filter = ["status", "instance"]
    readonly_fields = [f.name for f in Deployment._meta.fields]

    def has_add_permission(self, request):
        return False


@admin.register(HubExport)
class HubExportAdmin(admin.ModelAdmin):
    list_display = ["adapter", "repo_id", "merged", "status", "max_logit_diff", "created_at"]
    list_filter = ["status", "merged"]
    readonly_fields = [f.name for f in HubExport._meta.fields]

    def has_add_permission(self, request):
        return False
