from django.apps import AppConfig


class OpsConfig(AppConfig):
    name = "ecolink.ops"
    label = "ops"
