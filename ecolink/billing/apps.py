from django.apps import AppConfig


class BillingConfig(AppConfig):
    name = "ecolink.billing"
    label = "billing"
