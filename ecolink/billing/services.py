"""Every change to an organization's money goes through `ledger_post`."""

import uuid

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import F

from ecolink.accounts.models import Organization
from ecolink.billing.models import MICROS_PER_CENT, LedgerEntry


@transaction.atomic
def ledger_post(
    *,
    organization_id: int,
    amount_micros: int,
    key: str,
    kind: str,
    description: str = "",
) -> LedgerEntry | None:
    """Append one entry and move the cached balance with it, under the org's row lock.

    Returns None when an entry with `key` already exists: a repeated webhook, meter tick or
    retry is treated as already done, and money never moves twice.
    """
    if not isinstance(amount_micros, int) or isinstance(amount_micros, bool):
        raise TypeError("amount_micros must be an int (micro-dollars), never a float")
    org = Organization.objects.select_for_update().get(pk=organization_id)
    if LedgerEntry.objects.filter(key=key).exists():
        return None
    new_balance = org.balance_micros + amount_micros
    try:
        with transaction.atomic():
            entry = LedgerEntry.objects.create(
                organization=org,
                key=key,
                kind=kind,
                amount_micros=amount_micros,
                balance_after_micros=new_balance,
                description=description,
            )
    except IntegrityError:
        # The same key written by a transaction holding another org's lock: already done.
        return None
    Organization.objects.filter(pk=org.pk).update(
        balance_micros=F("balance_micros") + amount_micros
    )
    return entry


class TopupRefused(Exception):
    pass


def topup_test_mode(*, organization_id: int, amount_cents: int, nonce: str) -> LedgerEntry | None:
    """Credit directly, without Stripe: only on the embedded default, never in production.

    `nonce` comes from the form, so a double-clicked submit credits once.
    """
    if not settings.TEST_MODE_TOPUP:
        raise TopupRefused("Test-mode top-ups are off: this installation takes real payments.")
    if not 100 <= amount_cents <= settings.TOPUP_MAX_CENTS:
        raise TopupRefused(f"Top up between $1 and ${settings.TOPUP_MAX_CENTS // 100:,}.")
    return ledger_post(
        organization_id=organization_id,
        amount_micros=amount_cents * MICROS_PER_CENT,
        key=f"test-topup:{uuid.UUID(nonce)}",
        kind=LedgerEntry.Kind.TEST_TOPUP,
        description="Test-mode top-up (no payment taken)",
    )
