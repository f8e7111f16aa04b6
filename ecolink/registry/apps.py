from django.apps import AppConfig


class RegistryConfig(AppConfig):
    name = "ecolink.registry"
    label = "registry"
