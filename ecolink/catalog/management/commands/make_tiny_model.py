from django.conf import settings
from django.core.management.base import BaseCommand

from ecolink.catalog.services import tiny_model_register
from ecolink.catalog.tiny_model import ensure_tiny_model


class Command(BaseCommand):
    help = "Build the tiny local base model (no download) and put it on the allow-list."

    def handle(self, *args, **options):
        path = ensure_tiny_model(settings.TINY_MODEL_DIR)
        tiny_model_register(path=path)
        self.stdout.write(f"Tiny model ready at {path}")
