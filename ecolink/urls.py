from django.contrib import admin
from django.urls import include, path

from ecolink import views
from ecolink.finetune.views import internal as finetune_internal

urlpatterns = [
    path("", views.home, name="home"),
    path("healthz", views.healthz, name="healthz"),
    path("accounts/", include("ecolink.accounts.urls")),
    path("billing/", include("ecolink.billing.urls")),
    path("datasets/", include("ecolink.datasets.urls")),
    path("fine-tune/", include("ecolink.finetune.urls")),
    path("models/", include("ecolink.registry.urls")),
    path("settings/api-keys/", include("ecolink.api.page_urls")),
    path("ops/", include("ecolink.ops.urls")),
    path("admin/", admin.site.urls),
    # The OpenAI-compatible API (files, fine-tuning jobs, models, chat completions)
    # and EcoLink's native API; both authenticate with `Authorization: Bearer <key>`.
    path("v1/", include("ecolink.registry.api_urls")),
    path("v1/", include("ecolink.api.urls")),
    path("api/v1/", include("ecolink.api.native_urls")),
    path(
        "internal/jobs/<int:pk>/events",
        finetune_internal.trainer_events,
        name="trainer_events",
    ),
]
