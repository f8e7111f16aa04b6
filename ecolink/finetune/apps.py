from django.apps import AppConfig


class FinetuneConfig(AppConfig):
    name = "ecolink.finetune"
    label = "finetune"
