from typing import Any

from django.db.models import (
    BigIntegerField,
    CharField,
    Count,
    F,
    IntegerField,
    Max,
    Min,
    QuerySet,
    Sum,
    Value,
)

from ecolink.billing.models import LedgerEntry


def ledger_sum_micros(*, organization_id: int) -> int:
    """The balance as the ledger defines it: the sum of all the org's entries."""
    total = LedgerEntry.objects.filter(organization_id=organization_id).aggregate(
        s=Sum("amount_micros")
    )["s"]
    return total or 0


def statement_lines(*, organization_id: int) -> "QuerySet[Any, Any]":
    """The org's ledger as statement lines, newest first: one line per job (its charges
    summed in SQL, dated by its latest entry) and one per account entry (top-ups, credits,
    adjustments). Dicts with job_id, job_name, entry_id, line_kind, line_description,
    line_amount, balance_after, entries, first_at and at; paginate it as it is.
    """
    entries = LedgerEntry.objects.filter(organization_id=organization_id)
    # Both halves select the same columns in the same order, for the UNION.
    jobs = (
        entries.filter(job__isnull=False)
        .order_by()
        .values("job_id")
        .annotate(
            job_name=F("job__name"),
            entry_id=Value(None, output_field=BigIntegerField()),
            line_kind=Value("", output_field=CharField()),
            line_description=Value("", output_field=CharField()),
            line_amount=Sum("amount_micros"),
            balance_after=Value(None, output_field=BigIntegerField()),
            entries=Count("id"),
            first_at=Min("created_at"),
            at=Max("created_at"),
        )
    )
    account = (
        entries.filter(job__isnull=True)
        .order_by()
        .values("job_id")
        .annotate(
            job_name=Value(None, output_field=CharField()),
            entry_id=F("id"),
            line_kind=F("kind"),
            line_description=F("description"),
            line_amount=F("amount_micros"),
            balance_after=F("balance_after_micros"),
            entries=Value(1, output_field=IntegerField()),
            first_at=F("created_at"),
            at=F("created_at"),
        )
    )
    return jobs.union(account, all=True).order_by("-at", "-entry_id")


def job_entries(*, organization_id: int, job_id: int) -> QuerySet[LedgerEntry]:
    return LedgerEntry.objects.filter(organization_id=organization_id, job_id=job_id).order_by(
        "-created_at", "-id"
    )
