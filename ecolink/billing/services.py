"""Every change to an organization's money goes through `ledger_post`."""

import json
import logging
import time
import uuid
from dataclasses import dataclass
from typing import Any

import stripe
from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import F

from ecolink.accounts.models import Organization
from ecolink.billing.models import MICROS_PER_CENT, LedgerEntry, StripeEvent
from ecolink.billing.money import dollars

logger = logging.getLogger(__name__)


@transaction.atomic
def ledger_post(
    *,
    organization_id: int,
    amount_micros: int,
    key: str,
    kind: str,
    description: str = "",
    job_id: int | None = None,
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
                job_id=job_id,
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


# --- Stripe: Checkout top-ups, their webhook and the reconciliation of missed ones.
#
# Every path that learns of a paid Checkout session (webhook, success page, reconcile)
# credits it through `checkout_session_credit`, under the one key `stripe:<session id>`.


class StripeEventRejected(Exception):
    """A webhook delivery that is not a verifiable Stripe event: answered 400."""


@dataclass(frozen=True)
class CheckoutCredit:
    result: str  # a StripeEvent.Result value
    organization_id: int | None = None
    amount_micros: int | None = None
    detail: str = ""


@dataclass(frozen=True)
class EventOutcome:
    event: StripeEvent
    duplicate: bool


def stripe_client() -> stripe.StripeClient:
    return stripe.StripeClient(
        settings.STRIPE_SECRET_KEY,
        base_addresses={"api": settings.STRIPE_API_BASE},
        max_network_retries=2,
    )


def checkout_session_create(
    *, organization_id: int, amount_cents: int, success_url: str, cancel_url: str, nonce: str
) -> str:
    """Create a Checkout session that pays `amount_cents` into the org's balance and return
    the URL to send the payer to. `nonce` (one per form) makes a double submit one session."""
    if not settings.STRIPE_SECRET_KEY:
        raise TopupRefused("Stripe is not configured on this installation.")
    if not settings.TOPUP_MIN_CENTS <= amount_cents <= settings.TOPUP_MAX_CENTS:
        raise TopupRefused(
            f"Top up between {dollars(settings.TOPUP_MIN_CENTS * MICROS_PER_CENT)} "
            f"and {dollars(settings.TOPUP_MAX_CENTS * MICROS_PER_CENT)}."
        )
    session = stripe_client().v1.checkout.sessions.create(
        params={
            "mode": "payment",
            "line_items": [
                {
                    "quantity": 1,
                    "price_data": {
                        "currency": settings.CURRENCY,
                        "unit_amount": amount_cents,
                        "product_data": {"name": "EcoLink balance top-up"},
                    },
                }
            ],
            "client_reference_id": str(organization_id),
            "metadata": {"organization_id": str(organization_id)},
            "success_url": success_url,
            "cancel_url": cancel_url,
        },
        options={"idempotency_key": f"topup:{uuid.UUID(nonce)}"},
    )
    if not session.url:
        raise TopupRefused("Stripe did not return a Checkout URL; try again.")
    return session.url


def checkout_session_retrieve(*, session_id: str) -> dict[str, Any]:
    return stripe_client().v1.checkout.sessions.retrieve(session_id).to_dict()


def checkout_session_organization_id(session: dict[str, Any]) -> int | None:
    """The organization a session pays into, from its metadata (or client_reference_id)."""
    reference = (session.get("metadata") or {}).get("organization_id") or session.get(
        "client_reference_id"
    )
    if not isinstance(reference, str | int) or isinstance(reference, bool):
        return None
    try:
        return int(reference)
    except ValueError:
        return None


def checkout_session_credit(*, session: dict[str, Any]) -> CheckoutCredit:
    """Credit a Checkout session's amount to its organization if it is paid, exactly once.

    `session` is the Checkout session object as Stripe sends it (a plain dict).
    """
    Result = StripeEvent.Result
    session_id = session.get("id")
    if not isinstance(session_id, str) or not session_id.startswith("cs_"):
        return CheckoutCredit(Result.ERROR, detail="Not a Checkout session.")
    organization_id = checkout_session_organization_id(session)
    if organization_id is None:
        return CheckoutCredit(Result.IGNORED, detail="Not an EcoLink top-up: no organization.")
    if not Organization.objects.filter(pk=organization_id).exists():
        return CheckoutCredit(
            Result.ERROR, detail=f"Unknown organization {organization_id}: nothing credited."
        )
    if session.get("payment_status") != "paid":
        return CheckoutCredit(
            Result.UNPAID,
            organization_id=organization_id,
            detail=f"Payment status {session.get('payment_status')!r}: nothing credited yet.",
        )
    amount_cents = session.get("amount_total")
    if not isinstance(amount_cents, int) or isinstance(amount_cents, bool) or amount_cents <= 0:
        return CheckoutCredit(Result.ERROR, organization_id, detail="No amount paid.")
    if session.get("currency") != settings.CURRENCY:
        return CheckoutCredit(
            Result.ERROR, organization_id, detail=f"Currency {session.get('currency')!r}."
        )
    amount_micros = amount_cents * MICROS_PER_CENT
    entry = ledger_post(
        organization_id=organization_id,
        amount_micros=amount_micros,
        key=f"stripe:{session_id}",
        kind=LedgerEntry.Kind.TOPUP,
        description=f"Top-up by card (Stripe {session_id})",
    )
    return CheckoutCredit(
        Result.CREDITED if entry else Result.ALREADY_CREDITED,
        organization_id=organization_id,
        amount_micros=amount_micros,
    )


def stripe_event_verify(*, payload: bytes, sig_header: str | None) -> dict[str, Any]:
    """The event in `payload` once its signature and timestamp check out.

    The SDK refuses signatures older than the tolerance but accepts any future timestamp,
    so the future side is checked here.
    """
    secret = settings.STRIPE_WEBHOOK_SECRET
    if not secret:
        raise StripeEventRejected("Stripe webhooks are not configured on this installation.")
    # The SDK skips the age check for a tolerance of 0: never let a setting turn it off.
    tolerance = max(1, settings.STRIPE_WEBHOOK_TOLERANCE_SECONDS)
    try:
        stripe.WebhookSignature.verify_header(payload, sig_header, secret, tolerance)
    except stripe.SignatureVerificationError as error:
        raise StripeEventRejected(f"Invalid signature: {error.user_message}") from None
    except UnicodeDecodeError:
        raise StripeEventRejected("The payload is not UTF-8.") from None
    timestamp = int(next(p[2:] for p in (sig_header or "").split(",") if p.startswith("t=")))
    if timestamp > time.time() + settings.STRIPE_WEBHOOK_CLOCK_SKEW_SECONDS:
        raise StripeEventRejected("Invalid signature: timestamp is in the future.")
    try:
        event = json.loads(payload)
    except ValueError:
        raise StripeEventRejected("The payload is not JSON.") from None
    if not (
        isinstance(event, dict)
        and isinstance(event.get("id"), str)
        and isinstance(event.get("type"), str)
        and isinstance((event.get("data") or {}).get("object"), dict)
    ):
        raise StripeEventRejected("The payload is not a Stripe event.")
    return event


def _checkout_session_event(event_object: dict[str, Any]) -> CheckoutCredit:
    return checkout_session_credit(session=event_object)


# Event type → handler of the event's `data.object`. Other types are recorded as ignored.
EVENT_HANDLERS = {
    "checkout.session.completed": _checkout_session_event,
    "checkout.session.async_payment_succeeded": _checkout_session_event,
}


@transaction.atomic
def stripe_event_handle(*, payload: bytes, sig_header: str | None) -> EventOutcome:
    """Verify a webhook delivery, record it once per event id and handle it.

    The event's row is inserted first: a concurrent or later delivery of the same event
    fails on the unique event id and is answered as a duplicate without being handled.
    If handling fails, the row rolls back with it, so Stripe's retry handles it again.
    """
    event = stripe_event_verify(payload=payload, sig_header=sig_header)
    event_object = event["data"]["object"]
    handler = EVENT_HANDLERS.get(event["type"])
    row = StripeEvent(
        event_id=event["id"][:100],
        type=event["type"][:100],
        checkout_session_id=str(event_object.get("id", ""))[:200]
        if event["type"].startswith("checkout.session.")
        else "",
        result=StripeEvent.Result.IGNORED,
        detail="" if handler else "Event type not handled.",
    )
    try:
        with transaction.atomic():
            row.save(force_insert=True)
    except IntegrityError:
        return EventOutcome(StripeEvent.objects.get(event_id=row.event_id), duplicate=True)
    if handler is None:
        return EventOutcome(row, duplicate=False)
    credit = handler(event_object)
    row.result, row.detail = credit.result, credit.detail[:500]
    row.organization_id, row.amount_micros = credit.organization_id, credit.amount_micros
    row.save(update_fields=["result", "detail", "organization", "amount_micros"])
    logger.info("Stripe event %s (%s): %s", row.event_id, row.type, row.result)
    return EventOutcome(row, duplicate=False)


def stripe_reconcile(*, hours: int) -> list[tuple[str, CheckoutCredit]]:
    """Credit the paid Checkout sessions of the last `hours` whose webhook never arrived."""
    since = int(time.time()) - hours * 3600
    sessions = stripe_client().v1.checkout.sessions.list(
        params={"created": {"gte": since}, "status": "complete", "limit": 100}
    )
    return [
        (session.id, checkout_session_credit(session=session.to_dict()))
        for session in sessions.auto_paging_iter()
    ]
