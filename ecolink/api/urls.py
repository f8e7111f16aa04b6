"""/v1/: the OpenAI-compatible API (files, fine-tuning jobs, models)."""

from django.urls import path

from ecolink.api.v1 import api

urlpatterns = [path("", api.urls)]
