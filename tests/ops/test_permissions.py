"""Who reaches the operator console: staff in the Operators group, and nobody else."""

import pytest
from django.contrib.auth.models import Group
from django.urls import reverse

from ecolink.finetune.models import Job
from tests.factories import PASSWORD, OrganizationFactory, UserFactory, member_of
from tests.finetune.factories import JobFactory

pytestmark = pytest.mark.django_db

CONSOLE = ["/ops/", "/ops/throughput/", "/ops/throughput/cpu/lora/"]


def test_the_migration_gives_operators_read_only_money_and_audited_actions():
    perms = set(
        Group.objects.get(name="Operators").permissions.values_list(
            "content_type__app_label", "codename"
        )
    )
    assert ("billing", "view_ledgerentry") in perms
    assert not {p for p in perms if p[0] == "billing" and not p[1].startswith("view_")}
    assert {
        ("ops", "view_dashboard"),
        ("ops", "operate_job"),
        ("ops", "adjust_balance"),
        ("ops", "update_efficiency"),
        ("catalog", "change_gputype"),
        ("finetune", "view_job"),
    } <= perms
    assert ("finetune", "change_job") not in perms  # jobs change only through the actions


@pytest.mark.parametrize("url", CONSOLE)
def test_an_anonymous_visitor_is_sent_to_log_in(client, catalog, url):
    response = client.get(url)
    assert response.status_code == 302 and "/accounts/login/" in response["Location"]


@pytest.mark.parametrize("url", CONSOLE)
def test_a_non_staff_user_gets_404_on_the_console_and_a_redirect_on_the_admin(client, catalog, url):
    user = member_of(OrganizationFactory())
    client.login(username=user.username, password=PASSWORD)
    assert client.get(url).status_code == 404
    admin = client.get("/admin/")
    assert admin.status_code == 302 and "/admin/login/" in admin["Location"]
    assert client.get("/admin/billing/ledgerentry/").status_code == 302


def test_staff_outside_the_operators_group_are_refused(client, catalog):
    UserFactory(username="intern", is_staff=True)
    client.login(username="intern", password=PASSWORD)
    assert client.get("/ops/").status_code == 403
    assert client.get("/admin/finetune/job/").status_code == 403


@pytest.mark.parametrize("url", CONSOLE)
def test_an_operator_reaches_the_console(operator_client, catalog, url):
    assert operator_client.get(url).status_code == 200


def test_an_org_owner_cannot_reach_another_orgs_job_or_the_console(client, catalog):
    mine, theirs = OrganizationFactory(), OrganizationFactory()
    owner = member_of(mine)
    foreign = JobFactory(organization=theirs, status=Job.Status.TRAINING)
    client.login(username=owner.username, password=PASSWORD)
    assert client.get(reverse("finetune:detail", args=[foreign.pk])).status_code == 404
    assert client.post(reverse("finetune:action", args=[foreign.pk, "cancel"])).status_code == 404
    assert Job.objects.get(pk=foreign.pk).status == Job.Status.TRAINING
    assert client.get(f"/admin/finetune/job/{foreign.pk}/change/").status_code == 302
    assert client.get(f"/admin/finetune/job/{foreign.pk}/operate/cancel/").status_code == 302
