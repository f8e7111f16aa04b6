from django.apps import AppConfig


class CatalogConfig(AppConfig):
    name = "ecolink.catalog"
    label = "catalog"
