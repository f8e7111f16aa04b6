"""Money in the admin: the ledger can't be edited or deleted, corrections are new audited
entries, and an organization whose cached balance disagrees with its ledger is flagged."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from ecolink.accounts.models import Organization
from ecolink.billing.models import LedgerEntry, StripeEvent
from ecolink.billing.selectors import ledger_sum_micros
from ecolink.ops import services
from ecolink.ops.models import AuditLog
from tests.factories import PASSWORD, OrganizationFactory, UserFactory, fund

pytestmark = pytest.mark.django_db


@pytest.fixture
def superuser_client(client):
    UserFactory(username="root", is_staff=True, is_superuser=True)
    client.login(username="root", password=PASSWORD)
    return client


def entry_state(entry):
    return LedgerEntry.objects.values().get(pk=entry.pk)


@pytest.mark.parametrize("who", ["operator_client", "superuser_client"])
def test_the_ledger_cannot_be_changed_added_or_deleted_through_the_admin(org, who, request):
    client = request.getfixturevalue(who)
    entry = LedgerEntry.objects.get(organization=org)
    before = entry_state(entry)
    base = "/admin/billing/ledgerentry/"

    change = client.post(
        f"{base}{entry.pk}/change/",
        {"amount_micros": 1, "balance_after_micros": 1, "key": "x", "kind": "adjustment"},
    )
    assert change.status_code == 403
    delete = client.post(f"{base}{entry.pk}/delete/", {"post": "yes"})
    assert delete.status_code == 403
    assert client.post(f"{base}add/", {"amount_micros": 5}).status_code == 403
    bulk = client.post(
        base, {"action": "delete_selected", "_selected_action": [entry.pk], "post": "yes"}
    )
    assert bulk.status_code in (200, 302)
    assert entry_state(entry) == before
    assert LedgerEntry.objects.count() == 1

    listing = client.get(base).content.decode()
    assert "delete_selected" not in listing and 'name="action"' not in listing
    detail = client.get(f"{base}{entry.pk}/change/")
    assert detail.status_code == 200  # viewable, read-only
    assert b'name="amount_micros"' not in detail.content and b"Save" not in detail.content


def test_billing_sessions_and_stripe_events_are_read_only_too(org, superuser_client):
    event = StripeEvent.objects.create(
        event_id="evt_1",
        type="checkout.session.completed",
        organization=org,
        amount_micros=5_000_000,
        result=StripeEvent.Result.CREDITED,
    )
    listing = superuser_client.get("/admin/billing/stripeevent/")
    assert (
        listing.status_code == 200
        and b"evt_1" in listing.content
        and b"Credited" in listing.content
    )
    url = f"/admin/billing/stripeevent/{event.pk}/"
    assert superuser_client.post(f"{url}change/", {"result": "error"}).status_code == 403
    assert superuser_client.post(f"{url}delete/", {"post": "yes"}).status_code == 403
    assert StripeEvent.objects.get(pk=event.pk).result == "credited"
    assert superuser_client.get("/admin/billing/billingsession/").status_code == 200


def test_the_audit_log_cannot_be_edited_or_deleted_either(org, operator, superuser_client):
    row = services.balance_adjust(
        operator=operator, organization_id=org.pk, amount_micros=1, reason="cent"
    )
    audit = AuditLog.objects.get(target_id=str(row.pk))
    url = f"/admin/ops/auditlog/{audit.pk}/"
    assert superuser_client.post(f"{url}change/", {"reason": "edited"}).status_code == 403
    assert superuser_client.post(f"{url}delete/", {"post": "yes"}).status_code == 403
    assert AuditLog.objects.get(pk=audit.pk).reason == "cent"


def test_a_credit_is_a_new_audited_entry_moving_the_balance(org, operator):
    entry = services.balance_adjust(
        operator=operator, organization_id=org.pk, amount_micros=2_500_000, reason="Outage refund"
    )
    org.refresh_from_db()
    assert org.balance_micros == 102_500_000 == ledger_sum_micros(organization_id=org.pk)
    assert entry.kind == "adjustment" and entry.key.startswith("adjust:")
    assert "ops-alice" in entry.description and "Outage refund" in entry.description
    audit = AuditLog.objects.get()
    assert (audit.action, audit.target_type, audit.target_id) == (
        "balance_credit",
        "billing.ledgerentry",
        str(entry.pk),
    )
    assert audit.before == {"balance_micros": 100_000_000}
    assert audit.after["balance_micros"] == 102_500_000


def test_an_adjustment_without_a_reason_moves_no_money(org, operator):
    with pytest.raises(services.ReasonRequired):
        services.balance_adjust(
            operator=operator, organization_id=org.pk, amount_micros=-1_000_000, reason=" "
        )
    assert LedgerEntry.objects.filter(organization=org).count() == 1
    assert Organization.objects.get(pk=org.pk).balance_micros == 100_000_000
    assert not AuditLog.objects.exists()


def test_the_admin_form_credits_and_debits_with_reason_and_operator(org, operator_client):
    url = f"/admin/accounts/organization/{org.pk}/adjust/"
    assert operator_client.get(f"/admin/accounts/organization/{org.pk}/change/").status_code == 200
    refused = operator_client.post(url, {"direction": "debit", "amount": "1.50", "reason": ""})
    assert refused.status_code == 200 and b"This field is required" in refused.content
    assert LedgerEntry.objects.filter(organization=org).count() == 1

    assert (
        operator_client.post(
            url, {"direction": "debit", "amount": "1.500001", "reason": "Chargeback"}
        ).status_code
        == 302
    )
    debit = LedgerEntry.objects.filter(organization=org, kind="adjustment").latest("pk")
    assert debit.amount_micros == -1_500_001
    assert Organization.objects.get(pk=org.pk).balance_micros == 100_000_000 - 1_500_001
    audit = AuditLog.objects.get()
    assert audit.action == "balance_debit" and audit.operator_name == "ops-alice"


def test_a_corrupted_cached_balance_is_flagged_in_one_query_for_the_list(org, operator_client):
    healthy = OrganizationFactory(name="Healthy Ltd")
    fund(healthy, 7_000_000)
    # Simulate corruption: the cached balance moved without a ledger entry.
    Organization.objects.filter(pk=org.pk).update(balance_micros=123)

    with CaptureQueriesContext(connection) as ctx:
        listing = operator_client.get("/admin/accounts/organization/")
    page = listing.content.decode()
    assert page.count("MISMATCH") == 1 and "cached − ledger = -99,999,877" in page
    for _ in range(5):
        fund(OrganizationFactory(), 1_000_000)
    with CaptureQueriesContext(connection) as more:
        operator_client.get("/admin/accounts/organization/")
    assert len(more) == len(ctx)  # not one query per organization

    flagged = operator_client.get("/admin/accounts/organization/?balance=mismatch")
    assert org.name in flagged.content.decode()
    assert "Healthy Ltd" not in flagged.content.decode()
    ok = operator_client.get("/admin/accounts/organization/?balance=ok").content.decode()
    assert "Healthy Ltd" in ok and org.name not in ok
    assert operator_client.get("/ops/").context["mismatched"] == 1


def test_the_org_page_drills_down_to_its_ledger_entries(org, operator_client):
    other = OrganizationFactory()
    fund(other, 3_000_000, key="other-fund")
    page = operator_client.get(f"/admin/accounts/organization/{org.pk}/change/").content.decode()
    link = f"/admin/billing/ledgerentry/?organization__id__exact={org.pk}"
    assert link in page
    entries = operator_client.get(link)
    assert entries.status_code == 200
    assert f"fund:{org.pk}" in entries.content.decode()
    assert "other-fund" not in entries.content.decode()
