from django.apps import AppConfig


class ApiConfig(AppConfig):
    name = "ecolink.api"
    label = "api"
