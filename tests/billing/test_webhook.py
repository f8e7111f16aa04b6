"""Stripe's webhook, with events signed in the test as Stripe signs them."""

import threading
import time

import pytest
import requests
from django.urls import reverse

from ecolink.accounts.models import Organization
from ecolink.billing.models import MICROS_PER_CENT, LedgerEntry, StripeEvent
from ecolink.billing.selectors import ledger_sum_micros
from tests.billing.conftest import WEBHOOK_SECRET, checkout_session, event, sign
from tests.factories import OrganizationFactory

URL = reverse("billing:stripe_webhook")


def deliver(client, payload: bytes, signature: str | None = None):
    headers = {} if signature is None else {"HTTP_STRIPE_SIGNATURE": signature}
    return client.post(URL, payload, content_type="application/json", **headers)


def credited(org) -> int:
    org.refresh_from_db()
    assert org.balance_micros == ledger_sum_micros(organization_id=org.pk)
    return org.balance_micros


@pytest.mark.django_db
def test_a_paid_session_is_credited_once_to_its_organization(client, webhook, org):
    session = checkout_session(org.pk, amount=2_550)
    payload = event(session)
    response = deliver(client, payload, sign(payload))
    assert response.status_code == 200
    assert response.json() == {"result": "credited", "duplicate": False}
    entry = LedgerEntry.objects.get(organization=org)
    assert entry.key == f"stripe:{session['id']}"
    assert entry.kind == LedgerEntry.Kind.TOPUP
    assert entry.amount_micros == 2_550 * MICROS_PER_CENT
    assert credited(org) == 2_550 * MICROS_PER_CENT
    recorded = StripeEvent.objects.get(event_id="evt_1")
    assert (recorded.result, recorded.organization_id, recorded.amount_micros) == (
        StripeEvent.Result.CREDITED,
        org.pk,
        entry.amount_micros,
    )
    assert recorded.checkout_session_id == session["id"]


@pytest.mark.django_db
def test_a_tampered_body_is_refused(client, webhook, org):
    payload = event(checkout_session(org.pk, amount=500))
    signature = sign(payload)
    tampered = payload.replace(b'"amount_total": 500', b'"amount_total": 500000')
    assert tampered != payload
    response = deliver(client, tampered, signature)
    assert response.status_code == 400
    assert "signature" in response.content.decode().lower()
    assert credited(org) == 0
    assert not StripeEvent.objects.exists()


@pytest.mark.django_db
def test_a_signature_made_with_another_secret_is_refused_without_echoing_secrets(
    client, webhook, org
):
    payload = event(checkout_session(org.pk))
    response = deliver(client, payload, sign(payload, secret="whsec_someone_else"))
    assert response.status_code == 400
    body = response.content.decode()
    assert WEBHOOK_SECRET not in body and "whsec_someone_else" not in body
    assert credited(org) == 0


@pytest.mark.django_db
def test_a_stale_timestamp_is_refused_by_the_configured_tolerance(client, webhook, settings, org):
    settings.STRIPE_WEBHOOK_TOLERANCE_SECONDS = 60
    payload = event(checkout_session(org.pk))
    stale = deliver(client, payload, sign(payload, at=int(time.time()) - 120))
    assert stale.status_code == 400
    assert "tolerance" in stale.content.decode()
    assert credited(org) == 0
    # Within the tolerance, the same event signed a little earlier is accepted.
    recent = deliver(client, payload, sign(payload, at=int(time.time()) - 30))
    assert recent.status_code == 200
    assert credited(org) > 0


@pytest.mark.django_db
def test_a_future_timestamp_is_refused(client, webhook, settings, org):
    payload = event(checkout_session(org.pk))
    ahead = settings.STRIPE_WEBHOOK_CLOCK_SKEW_SECONDS + 30
    response = deliver(client, payload, sign(payload, at=int(time.time()) + ahead))
    assert response.status_code == 400
    assert "future" in response.content.decode()
    assert credited(org) == 0
    assert deliver(client, payload, sign(payload, at=int(time.time()) + 5)).status_code == 200


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("payload", "signature"),
    [
        (b'{"id": "evt_1"}', None),  # no header
        (b'{"id": "evt_1"}', "garbage"),
        (b'{"id": "evt_1"}', "t=notanumber,v1=abc"),
        (b"not json", "SIGN"),
        (b'{"id": "evt_1", "type": "checkout.session.completed"}', "SIGN"),  # no data.object
        (b"\xff\xfe", "SIGN"),  # not UTF-8
    ],
)
def test_malformed_deliveries_are_answered_400_never_500(client, webhook, payload, signature):
    if signature == "SIGN":
        signature = sign(payload)
    response = deliver(client, payload, signature)
    assert response.status_code == 400
    assert response.content  # a message that says what is wrong
    assert not StripeEvent.objects.exists()


@pytest.mark.django_db
def test_without_a_webhook_secret_every_delivery_is_refused(client, settings, org):
    settings.STRIPE_WEBHOOK_SECRET = ""
    payload = event(checkout_session(org.pk))
    response = deliver(client, payload, sign(payload, secret=""))
    assert response.status_code == 400
    assert "not configured" in response.content.decode()
    assert credited(org) == 0


@pytest.mark.django_db
def test_the_webhook_takes_posts_only(client, webhook):
    assert client.get(URL).status_code == 405


@pytest.mark.django_db
def test_an_unpaid_session_is_credited_when_its_async_payment_succeeds(client, webhook, org):
    pending = checkout_session(org.pk, paid=False, amount=1_000)
    first = event(pending, event_id="evt_completed")
    response = deliver(client, first, sign(first))
    assert response.status_code == 200
    assert response.json()["result"] == "unpaid"
    assert credited(org) == 0

    succeeded = event(
        checkout_session(org.pk, amount=1_000),
        event_id="evt_async",
        type="checkout.session.async_payment_succeeded",
    )
    response = deliver(client, succeeded, sign(succeeded))
    assert response.json()["result"] == "credited"
    assert credited(org) == 1_000 * MICROS_PER_CENT
    results = dict(StripeEvent.objects.values_list("event_id", "result"))
    assert results == {"evt_completed": "unpaid", "evt_async": "credited"}


@pytest.mark.django_db
def test_an_unknown_organization_is_recorded_as_an_error_and_credits_nothing(client, webhook):
    missing = (Organization.objects.order_by("-pk").values_list("pk", flat=True).first() or 0) + 99
    payload = event(checkout_session(missing))
    response = deliver(client, payload, sign(payload))
    assert response.status_code == 200  # Stripe's retries would not make it exist
    recorded = StripeEvent.objects.get()
    assert recorded.result == StripeEvent.Result.ERROR
    assert str(missing) in recorded.detail
    assert not LedgerEntry.objects.exists()


@pytest.mark.django_db
def test_a_session_of_another_product_is_ignored(client, webhook):
    session = checkout_session(0, client_reference_id=None, metadata={})
    payload = event(session)
    assert deliver(client, payload, sign(payload)).json()["result"] == "ignored"
    assert not LedgerEntry.objects.exists()


@pytest.mark.django_db
def test_an_unhandled_event_type_is_recorded_as_ignored(client, webhook, org):
    payload = event(checkout_session(org.pk), type="checkout.session.async_payment_failed")
    response = deliver(client, payload, sign(payload))
    assert response.status_code == 200
    recorded = StripeEvent.objects.get()
    assert (recorded.type, recorded.result) == (
        "checkout.session.async_payment_failed",
        StripeEvent.Result.IGNORED,
    )
    assert credited(org) == 0


@pytest.mark.django_db
def test_a_redelivered_event_or_another_event_for_the_session_credits_nothing(client, webhook, org):
    session = checkout_session(org.pk)
    payload = event(session)
    assert deliver(client, payload, sign(payload)).json()["result"] == "credited"
    once = credited(org)

    again = deliver(client, payload, sign(payload))
    assert again.status_code == 200
    assert again.json() == {"result": "credited", "duplicate": True}

    other = event(session, event_id="evt_2", type="checkout.session.async_payment_succeeded")
    response = deliver(client, other, sign(other))
    assert response.status_code == 200
    assert response.json()["result"] == "already_credited"
    assert credited(org) == once
    assert LedgerEntry.objects.filter(organization=org).count() == 1
    assert StripeEvent.objects.count() == 2


@pytest.mark.django_db(transaction=True)
def test_twenty_concurrent_deliveries_of_one_event_credit_once(live_server, webhook):
    org = OrganizationFactory()
    payload = event(checkout_session(org.pk, amount=4_200))
    signature = sign(payload)
    barrier = threading.Barrier(20)
    responses, errors = [], []

    def send():
        try:
            barrier.wait()
            responses.append(
                requests.post(
                    live_server.url + URL,
                    data=payload,
                    headers={"Stripe-Signature": signature, "Content-Type": "application/json"},
                    timeout=30,
                )
            )
        except Exception as exc:  # surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=send) for _ in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert [r.status_code for r in responses] == [200] * 20
    assert sum(not r.json()["duplicate"] for r in responses) == 1
    assert LedgerEntry.objects.filter(organization=org).count() == 1
    assert StripeEvent.objects.count() == 1
    assert credited(org) == 4_200 * MICROS_PER_CENT
