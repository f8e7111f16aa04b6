from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from ecolink.accounts.models import Organization
from ecolink.accounts.services import organization_create
from ecolink.api.keys import api_key_create
from ecolink.billing.models import LedgerEntry
from ecolink.billing.services import ledger_post

DEMO_USERNAME = "demo"
DEMO_PASSWORD = "ecolink-demo"  # noqa: S105 - local demo only: the command refuses to run in production


class Command(BaseCommand):
    help = "Seed the catalog, the tiny model, and a demo organization, user and balance."

    def handle(self, *args, **options):
        if settings.PRODUCTION:
            raise CommandError("bootstrap_demo creates a known password: not in production.")
        call_command("seed_catalog", stdout=self.stdout)
        call_command("make_tiny_model", stdout=self.stdout)
        with transaction.atomic():
            user, created = get_user_model().objects.get_or_create(
                username=DEMO_USERNAME, defaults={"email": "demo@ecolink.local", "is_staff": True}
            )
            if created:
                user.set_password(DEMO_PASSWORD)
                user.is_superuser = True
                user.save()
            org = Organization.objects.filter(slug="demo").first() or organization_create(
                name="Demo", owner=user, slug="demo"
            )
            ledger_post(
                organization_id=org.pk,
                amount_micros=settings.DEMO_BALANCE_MICROS,
                key=f"demo:{org.pk}",
                kind=LedgerEntry.Kind.ADJUSTMENT,
                description="Demo starting balance",
            )
            # A new key on every run: the old ones stay valid, and the plain key is never
            # stored, so there is none to print again.
            _, api_key = api_key_create(organization=org, name="Demo key", created_by=user)
        self.stdout.write(f"Login: {DEMO_USERNAME} / {DEMO_PASSWORD}")
        self.stdout.write(f"API key: {api_key}")
