from django.apps import AppConfig


class AccountsConfig(AppConfig):
    name = "ecolink.accounts"
    label = "accounts"
