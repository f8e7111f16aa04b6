from django.core.management.base import BaseCommand

from ecolink.catalog.services import catalog_seed


class Command(BaseCommand):
    help = "Install the seeded base models, GPU types and regions (keeps operator edits)."

    def handle(self, *args, **options):
        catalog_seed()
        self.stdout.write("Catalog seeded.")
