import threading

import pytest
from django.db import connection

from ecolink.accounts.models import Organization
from ecolink.billing.models import LedgerEntry
from ecolink.billing.selectors import ledger_sum_micros
from ecolink.billing.services import ledger_post
from tests.factories import OrganizationFactory


def post(org, amount, key):
    return ledger_post(
        organization_id=org.pk, amount_micros=amount, key=key, kind=LedgerEntry.Kind.ADJUSTMENT
    )


@pytest.mark.django_db
def test_an_entry_moves_the_cached_balance_and_records_the_balance_after():
    org = OrganizationFactory()
    post(org, 3_000_000, "a")
    entry = post(org, -1_250_000, "b")
    org.refresh_from_db()
    assert org.balance_micros == 1_750_000 == ledger_sum_micros(organization_id=org.pk)
    assert entry.balance_after_micros == 1_750_000


@pytest.mark.django_db
def test_the_same_key_twice_moves_money_once():
    org = OrganizationFactory()
    assert post(org, 1_000_000, "stripe:cs_1") is not None
    assert post(org, 1_000_000, "stripe:cs_1") is None
    org.refresh_from_db()
    assert org.balance_micros == 1_000_000
    assert LedgerEntry.objects.filter(key="stripe:cs_1").count() == 1


@pytest.mark.django_db
def test_floats_are_refused():
    org = OrganizationFactory()
    with pytest.raises(TypeError):
        post(org, 1.5, "float")


@pytest.mark.django_db(transaction=True)
def test_concurrent_posts_with_one_key_credit_once_and_keep_balance_equal_to_the_sum():
    org = OrganizationFactory()
    barrier = threading.Barrier(8)
    errors = []

    def worker(i):
        try:
            barrier.wait()
            post(org, 500_000, "same-key")
            post(org, 1, f"unique-{i}")
        except Exception as exc:  # surfaced below
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    balance = Organization.objects.get(pk=org.pk).balance_micros
    assert balance == 500_000 + 8 == ledger_sum_micros(organization_id=org.pk)


@pytest.mark.django_db
def test_test_mode_top_up_credits_once_per_form_and_returns_to_next(client, settings):
    from django.urls import reverse

    from tests.factories import PASSWORD, member_of

    settings.TEST_MODE_TOPUP = True
    org = OrganizationFactory()
    user = member_of(org)
    client.login(username=user.username, password=PASSWORD)
    form = {
        "amount_dollars": "20",
        "nonce": "0f0e0d0c-0b0a-4908-8706-050403020100",
        "next": "/fine-tune/new?step=6",
    }
    response = client.post(reverse("billing:test_topup"), form)
    client.post(reverse("billing:test_topup"), form)
    assert response["Location"] == "/fine-tune/new?step=6"
    org.refresh_from_db()
    assert org.balance_micros == 20_000_000


@pytest.mark.django_db
def test_test_mode_top_up_is_refused_when_payments_are_real(client, settings):
    from django.urls import reverse

    from tests.factories import PASSWORD, member_of

    settings.TEST_MODE_TOPUP = False
    org = OrganizationFactory()
    user = member_of(org)
    client.login(username=user.username, password=PASSWORD)
    client.post(
        reverse("billing:test_topup"),
        {
            "amount_dollars": "20",
            "nonce": "0f0e0d0c-0b0a-4908-8706-050403020100",
            "next": "https://evil.example.com/",
        },
    )
    org.refresh_from_db()
    assert org.balance_micros == 0
