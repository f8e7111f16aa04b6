"""Credit paid Checkout sessions whose webhook never arrived (Stripe down, endpoint down).

Safe to run at any time and as often as wanted: a session already credited is skipped by
its ledger key, whether the webhook, the success page or an earlier run credited it.
"""

from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from ecolink.billing.models import StripeEvent
from ecolink.billing.money import dollars
from ecolink.billing.services import stripe_reconcile


class Command(BaseCommand):
    help = "Credit the paid Stripe Checkout sessions of the last hours that were not credited."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--hours", type=int, default=72, help="How far back to look.")

    def handle(self, *args: Any, hours: int, **options: Any) -> None:
        if not settings.STRIPE_SECRET_KEY:
            raise CommandError("STRIPE_SECRET_KEY is not set: there is nothing to reconcile.")
        if hours <= 0:
            raise CommandError("--hours must be positive.")
        results = stripe_reconcile(hours=hours)
        credited = 0
        for session_id, credit in results:
            line = f"{session_id}: {StripeEvent.Result(credit.result).label}"
            if credit.organization_id is not None:
                line += f", organization {credit.organization_id}"
            if credit.amount_micros is not None:
                line += f", {dollars(credit.amount_micros)}"
            if credit.detail:
                line += f" ({credit.detail})"
            if credit.result == StripeEvent.Result.CREDITED:
                credited += 1
                self.stdout.write(self.style.SUCCESS(line))
            else:
                self.stdout.write(line)
        self.stdout.write(
            f"{len(results)} completed session(s) in the last {hours} h, {credited} credited now."
        )
