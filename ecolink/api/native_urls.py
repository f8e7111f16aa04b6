"""/api/v1/: EcoLink's native API (fine-tuning hardware, estimates, job views)."""

from django.urls import path

from ecolink.api.native import api

urlpatterns = [
    path("", api.urls),
]
