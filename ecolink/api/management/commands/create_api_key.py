from django.core.management.base import BaseCommand, CommandError

from ecolink.accounts.models import Organization
from ecolink.api.keys import api_key_create


class Command(BaseCommand):
    help = "Create an API key for an organization and print it (it is shown only this once)."

    def add_arguments(self, parser):
        parser.add_argument("--org", required=True, help="The organization's slug.")
        parser.add_argument("--name", default="CLI key", help="A name to tell the key apart.")

    def handle(self, *args, org, name, **options):
        organization = Organization.objects.filter(slug=org).first()
        if organization is None:
            raise CommandError(f"No organization with slug {org!r}.")
        _, plain = api_key_create(organization=organization, name=name)
        self.stdout.write(plain)
