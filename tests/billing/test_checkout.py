"""Card top-ups through Stripe Checkout, against a fake Stripe API on loopback, and the
reconciliation of sessions whose webhook was missed."""

import io
import re
import time
from urllib.parse import parse_qs, urlsplit

import pytest
from django.core.management import CommandError, call_command
from django.urls import reverse

from ecolink.billing.models import MICROS_PER_CENT, LedgerEntry, StripeEvent
from ecolink.billing.selectors import ledger_sum_micros
from ecolink.billing.services import checkout_session_credit
from tests.billing.conftest import SECRET_KEY, checkout_session, event, sign
from tests.factories import OrganizationFactory

NONCE = "0f0e0d0c-0b0a-4908-8706-050403020100"


def balance(org) -> int:
    org.refresh_from_db()
    assert org.balance_micros == ledger_sum_micros(organization_id=org.pk)
    return org.balance_micros


@pytest.mark.django_db
def test_a_top_up_creates_a_checkout_session_for_the_amount_and_sends_the_payer_to_it(
    logged_in, fake_stripe, org
):
    response = logged_in.post(
        reverse("billing:checkout"),
        {"amount_dollars": "25.50", "nonce": NONCE, "next": "/fine-tune/7"},
    )
    [created] = fake_stripe.created()
    assert response.status_code == 303
    [session] = fake_stripe.sessions.values()
    assert response["Location"] == session["url"]
    form = created["form"]
    assert created["path"] == "/v1/checkout/sessions"
    assert form["mode"] == "payment"
    assert form["line_items[0][price_data][unit_amount]"] == "2550"
    assert form["line_items[0][price_data][currency]"] == "usd"
    assert form["line_items[0][quantity]"] == "1"
    assert form["metadata[organization_id]"] == str(org.pk)
    assert form["client_reference_id"] == str(org.pk)
    success = urlsplit(form["success_url"])
    assert success.path == reverse("billing:checkout_success")
    # Stripe substitutes the literal placeholder; the job page to return to rides along.
    assert "session_id={CHECKOUT_SESSION_ID}" in success.query
    assert parse_qs(success.query)["next"] == ["/fine-tune/7"]
    assert urlsplit(form["cancel_url"]).path == reverse("billing:billing")
    assert created["headers"]["Authorization"] == f"Bearer {SECRET_KEY}"
    assert NONCE in created["headers"]["Idempotency-Key"]
    assert balance(org) == 0  # nothing is credited before Stripe says it is paid


@pytest.mark.django_db
@pytest.mark.parametrize("amount", ["4.99", "1000.01", "-5", "ten"])
def test_amounts_outside_the_limits_never_reach_stripe(logged_in, fake_stripe, amount):
    response = logged_in.post(
        reverse("billing:checkout"), {"amount_dollars": amount, "nonce": NONCE}
    )
    assert response.status_code == 400
    assert fake_stripe.requests == []


@pytest.mark.django_db
def test_a_stripe_error_sends_the_payer_back_with_a_message(logged_in, fake_stripe):
    fake_stripe.create_error = {"type": "invalid_request_error", "message": "Bad currency"}
    response = logged_in.post(
        reverse("billing:checkout"), {"amount_dollars": "10", "nonce": NONCE}, follow=True
    )
    assert response.redirect_chain == [(reverse("billing:billing"), 302)]
    assert "Stripe could not start the payment" in response.content.decode()
    assert len(fake_stripe.created()) == 1


@pytest.mark.django_db
def test_an_unsafe_next_is_dropped(logged_in, fake_stripe):
    logged_in.post(
        reverse("billing:checkout"),
        {"amount_dollars": "10", "nonce": NONCE, "next": "https://evil.example.com/"},
    )
    [created] = fake_stripe.created()
    assert "evil" not in created["form"]["success_url"] + created["form"]["cancel_url"]


@pytest.mark.django_db
def test_the_success_page_credits_a_paid_session_once_and_leads_back_to_the_job(
    client, logged_in, fake_stripe, webhook, org
):
    session = checkout_session(org.pk, session_id="cs_test_paid", amount=3_000)
    fake_stripe.sessions[session["id"]] = session
    url = reverse("billing:checkout_success") + "?session_id=cs_test_paid&next=/fine-tune/7"
    response = logged_in.get(url)
    assert response.status_code == 200
    assert response.context["credited"] is True
    assert 'href="/fine-tune/7"' in response.content.decode()
    assert balance(org) == 3_000 * MICROS_PER_CENT
    # Reloading the page, and the webhook arriving afterwards, credit nothing more.
    logged_in.get(url)
    payload = event(session)
    assert (
        client.post(
            reverse("billing:stripe_webhook"),
            payload,
            content_type="application/json",
            HTTP_STRIPE_SIGNATURE=sign(payload),
        ).json()["result"]
        == "already_credited"
    )
    assert balance(org) == 3_000 * MICROS_PER_CENT
    assert LedgerEntry.objects.filter(key="stripe:cs_test_paid").count() == 1


@pytest.mark.django_db
def test_the_success_page_waits_for_an_unpaid_session(logged_in, fake_stripe, org):
    session = checkout_session(org.pk, session_id="cs_test_wait", paid=False)
    fake_stripe.sessions[session["id"]] = session
    response = logged_in.get(reverse("billing:checkout_success") + "?session_id=cs_test_wait")
    assert response.status_code == 200
    assert response.context["credited"] is False
    assert "Waiting for payment" in response.content.decode()
    assert balance(org) == 0


@pytest.mark.django_db
def test_the_success_page_of_another_organizations_session_is_not_found(
    logged_in, fake_stripe, org
):
    other = OrganizationFactory()
    session = checkout_session(other.pk, session_id="cs_test_other")
    fake_stripe.sessions[session["id"]] = session
    response = logged_in.get(reverse("billing:checkout_success") + "?session_id=cs_test_other")
    assert response.status_code == 404
    assert balance(other) == 0


@pytest.mark.django_db
def test_stripe_reconcile_credits_paid_sessions_whose_webhook_was_missed(fake_stripe):
    a, b = OrganizationFactory(), OrganizationFactory()
    missed = checkout_session(a.pk, session_id="cs_test_missed", amount=1_200)
    seen = checkout_session(b.pk, session_id="cs_test_seen", amount=700)
    unpaid = checkout_session(b.pk, session_id="cs_test_unpaid", paid=False)
    for session in (missed, seen, unpaid):
        fake_stripe.sessions[session["id"]] = session
    checkout_session_credit(session=seen)  # its webhook did arrive

    out = io.StringIO()
    call_command("stripe_reconcile", "--hours", "5", stdout=out)
    listed = [r for r in fake_stripe.requests if r["path"] == "/v1/checkout/sessions"]
    assert listed[0]["query"]["status"] == "complete"
    assert abs(int(listed[0]["query"]["created[gte]"]) - (time.time() - 5 * 3600)) < 60
    assert balance(a) == 1_200 * MICROS_PER_CENT
    assert balance(b) == 700 * MICROS_PER_CENT
    printed = out.getvalue()
    assert "cs_test_missed: Credited" in printed
    assert "cs_test_seen: Already credited" in printed
    assert "cs_test_unpaid: Not paid yet" in printed

    call_command("stripe_reconcile", stdout=io.StringIO())  # a second run is harmless
    assert balance(a) == 1_200 * MICROS_PER_CENT
    assert LedgerEntry.objects.filter(kind=LedgerEntry.Kind.TOPUP).count() == 2
    assert not StripeEvent.objects.exists()  # no webhook event was involved


@pytest.mark.django_db
def test_stripe_reconcile_needs_the_stripe_key(settings):
    settings.STRIPE_SECRET_KEY = ""
    with pytest.raises(CommandError):
        call_command("stripe_reconcile")


@pytest.mark.django_db
def test_with_stripe_keys_the_page_offers_card_payment_and_no_test_mode(logged_in, fake_stripe):
    page = logged_in.get(reverse("billing:billing")).content.decode()
    assert 'data-testid="checkout"' in page
    assert re.search(r'type="hidden" name="nonce" value="[0-9a-f-]{36}"', page)
    assert 'min="5.00"' in page and 'max="1000.00"' in page
    assert "Test mode" not in page and 'data-testid="test-topup"' not in page


@pytest.mark.django_db
def test_without_stripe_keys_the_page_offers_a_labelled_test_mode_top_up(logged_in, settings):
    settings.STRIPE_SECRET_KEY = ""
    settings.TEST_MODE_TOPUP = True
    page = logged_in.get(reverse("billing:billing")).content.decode()
    assert "Test mode" in page and 'data-testid="test-topup"' in page
    assert 'data-testid="checkout"' not in page


@pytest.mark.django_db
def test_production_without_stripe_keys_offers_no_top_up(logged_in, settings):
    settings.STRIPE_SECRET_KEY = ""
    settings.TEST_MODE_TOPUP = False
    page = logged_in.get(reverse("billing:billing")).content.decode()
    assert 'data-testid="test-topup"' not in page and 'data-testid="checkout"' not in page
