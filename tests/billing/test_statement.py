"""/billing: the balance and the statement, each job's charges summed on one line."""

import pytest
from django.db import connection
from django.db.models import Sum
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from ecolink.billing.models import LedgerEntry
from ecolink.billing.services import ledger_post
from tests.factories import OrganizationFactory, fund
from tests.finetune.factories import JobFactory


def charge(job, key, micros):
    ledger_post(
        organization_id=job.organization_id,
        amount_micros=-micros,
        key=key,
        kind=LedgerEntry.Kind.METER,
        description=f"GPU minute, job {job.pk}",
        job_id=job.pk,
    )


def topup(org, key, micros):
    ledger_post(
        organization_id=org.pk,
        amount_micros=micros,
        key=key,
        kind=LedgerEntry.Kind.TOPUP,
        description=f"Top-up {key}",
    )


def lines(response):
    return list(response.context["page"].object_list)


@pytest.mark.django_db
def test_the_statement_sums_each_jobs_charges_and_lists_account_entries(catalog, logged_in, org):
    topup(org, "stripe:cs_a", 50_000_000)
    first, second = JobFactory(organization=org), JobFactory(organization=org)
    for minute in range(7):
        charge(first, f"meter:first:{minute}", 130_000 + minute)
    for minute in range(3):
        charge(second, f"meter:second:{minute}", 90_000)
    topup(org, "stripe:cs_b", 10_000_000)
    other_org = OrganizationFactory()
    fund(other_org, 1_000_000)

    response = logged_in.get(reverse("billing:billing"))
    assert response.status_code == 200
    by_job = {line["job_id"]: line for line in lines(response) if line["job_id"]}
    for job in (first, second):
        total = LedgerEntry.objects.filter(job=job).aggregate(s=Sum("amount_micros"))["s"]
        assert by_job[job.pk]["line_amount"] == total
        assert by_job[job.pk]["entries"] == LedgerEntry.objects.filter(job=job).count()
        assert by_job[job.pk]["job_name"] == job.name
    account = [line for line in lines(response) if not line["job_id"]]
    assert [line["line_description"] for line in account] == [
        "Top-up stripe:cs_b",
        "Top-up stripe:cs_a",
    ]
    assert len(lines(response)) == 4  # two jobs, two top-ups; nothing of the other org
    page = response.content.decode()
    assert page.count('data-testid="statement-job"') == 2
    assert reverse("billing:job_statement", args=[first.pk]) in page
    org.refresh_from_db()
    assert f"{org.balance_micros // 1_000_000}." in page  # the balance is shown


@pytest.mark.django_db
def test_the_statement_costs_the_same_queries_however_long_the_history(catalog, logged_in, org):
    job = JobFactory(organization=org)
    charge(job, "meter:x:0", 1_000)
    topup(org, "t0", 1_000)
    with CaptureQueriesContext(connection) as small:
        logged_in.get(reverse("billing:billing"))
    for minute in range(1, 120):
        charge(job, f"meter:x:{minute}", 1_000)
    for i in range(1, 30):
        topup(org, f"t{i}", 1_000)
    for n in range(5):
        charge(JobFactory(organization=org), f"meter:{n}:y", 1_000)
    with CaptureQueriesContext(connection) as large:
        response = logged_in.get(reverse("billing:billing"))
    assert len(response.context["page"].object_list) == 1 + 30 + 5
    assert len(large.captured_queries) == len(small.captured_queries)


@pytest.mark.django_db
def test_the_statement_is_paginated(logged_in, org):
    for i in range(55):
        topup(org, f"t{i}", 1_000)
    first = logged_in.get(reverse("billing:billing"))
    second = logged_in.get(reverse("billing:billing") + "?page=2")
    assert len(lines(first)) == 50 and len(lines(second)) == 5
    seen = {line["entry_id"] for line in lines(first) + lines(second)}
    assert seen == set(LedgerEntry.objects.filter(organization=org).values_list("pk", flat=True))


@pytest.mark.django_db
def test_a_jobs_statement_lists_its_entries_and_hides_other_organizations_jobs(
    catalog, logged_in, org
):
    job = JobFactory(organization=org)
    for minute in range(3):
        charge(job, f"meter:j:{minute}", 5_000)
    response = logged_in.get(reverse("billing:job_statement", args=[job.pk]))
    assert response.status_code == 200
    assert [e.key for e in response.context["page"]] == [f"meter:j:{m}" for m in (2, 1, 0)]
    foreign = JobFactory()
    assert logged_in.get(reverse("billing:job_statement", args=[foreign.pk])).status_code == 404
