from django.apps import AppConfig


class DatasetsConfig(AppConfig):
    name = "ecolink.datasets"
    label = "datasets"
