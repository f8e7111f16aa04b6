from django.urls import path

from ecolink.registry import api_views

# Mounted at /v1/ next to ecolink.api.urls (files, fine_tuning, models).
urlpatterns = [
    path("chat/completions", api_views.chat_completions, name="chat_completions"),
    path("deployments", api_views.deployments, name="deployments"),
    path("deployments/<path:model>", api_views.deployment, name="deployment"),
    path("exports/hugging-face", api_views.export_hugging_face, name="export_hugging_face"),
]
