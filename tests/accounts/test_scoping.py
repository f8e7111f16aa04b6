import pytest
from django.http import Http404
from django.test import RequestFactory
from django.urls import reverse

from ecolink.accounts.models import Membership
from ecolink.accounts.scoping import current_organization, get_for_org, org_queryset
from ecolink.accounts.services import user_signup
from ecolink.billing.models import LedgerEntry
from ecolink.billing.services import ledger_post
from tests.factories import PASSWORD, OrganizationFactory, member_of

pytestmark = pytest.mark.django_db


def credit(org, amount, key):
    return ledger_post(
        organization_id=org.pk, amount_micros=amount, key=key, kind=LedgerEntry.Kind.ADJUSTMENT
    )


def request_for(user, session=None):
    request = RequestFactory().get("/")
    request.user = user
    request.session = session or {}
    return request


def test_get_for_org_hides_another_orgs_row_as_404():
    org_a, org_b = OrganizationFactory(), OrganizationFactory()
    user_a = member_of(org_a)
    own = credit(org_a, 1_000_000, "a")
    foreign = credit(org_b, 2_000_000, "b")

    request = request_for(user_a)
    assert get_for_org(request, LedgerEntry, pk=own.pk) == own
    with pytest.raises(Http404):
        get_for_org(request, LedgerEntry, pk=foreign.pk)
    assert list(org_queryset(request, LedgerEntry)) == [own]


def test_user_without_an_org_sees_nothing():
    org = OrganizationFactory()
    credit(org, 1, "x")
    loner = member_of(OrganizationFactory())
    Membership.objects.filter(user=loner).delete()
    assert org_queryset(request_for(loner), LedgerEntry).count() == 0


def test_session_cannot_select_an_org_the_user_does_not_belong_to():
    org_a, org_b = OrganizationFactory(), OrganizationFactory()
    user_a = member_of(org_a)
    assert current_organization(request_for(user_a, {"org_id": org_b.pk})) == org_a


def test_billing_page_lists_only_the_acting_orgs_entries(client):
    org_a, org_b = OrganizationFactory(name="Alpha"), OrganizationFactory(name="Beta")
    user = member_of(org_a)
    credit(org_a, 1_230_000, "mine")
    credit(org_b, 9_870_000, "theirs")
    client.login(username=user.username, password=PASSWORD)

    page = client.get(reverse("billing:billing")).content.decode()
    assert "$1.23" in page
    assert "$9.87" not in page


def test_switching_to_a_foreign_org_is_404_and_to_an_own_org_works(client):
    org_a, org_b, org_c = OrganizationFactory(), OrganizationFactory(), OrganizationFactory()
    user = member_of(org_a)
    Membership.objects.create(user=user, organization=org_c)
    credit(org_c, 7_000_000, "c")
    client.login(username=user.username, password=PASSWORD)

    assert client.post(reverse("accounts:switch", args=[org_b.pk])).status_code == 404
    assert client.post(reverse("accounts:switch", args=[org_c.pk])).status_code == 302
    page = client.get(reverse("home")).content.decode()
    assert 'data-testid="balance-badge"' in page
    assert "$7.00" in page


def test_switch_requires_post(client):
    org = OrganizationFactory()
    user = member_of(org)
    client.login(username=user.username, password=PASSWORD)
    assert client.get(reverse("accounts:switch", args=[org.pk])).status_code == 405


def test_signup_creates_a_personal_org_owned_by_the_user_with_its_credit(settings):
    settings.SIGNUP_CREDIT_MICROS = 5_000_000
    user = user_signup(username="ada", email="ada@example.com", password=PASSWORD)
    membership = Membership.objects.get(user=user)
    assert membership.role == Membership.Role.OWNER
    assert membership.organization.personal
    assert membership.organization.balance_micros == 5_000_000


def test_signup_view_rejects_a_weak_password_and_a_taken_username(client):
    user_signup(username="ada", email="ada@example.com", password=PASSWORD)
    response = client.post(
        reverse("accounts:signup"), {"username": "ADA", "email": "x@example.com", "password": "1"}
    )
    body = response.content.decode()
    assert response.status_code == 200
    assert "That username is taken." in body
    assert "at least 8 characters" in body


def test_pages_need_login(client):
    response = client.get(reverse("billing:billing"))
    assert response.status_code == 302
    assert reverse("accounts:login") in response["Location"]
