from django.db.models import Sum

from ecolink.billing.models import LedgerEntry


def ledger_sum_micros(*, organization_id: int) -> int:
    """The balance as the ledger defines it: the sum of all the org's entries."""
    total = LedgerEntry.objects.filter(organization_id=organization_id).aggregate(
        s=Sum("amount_micros")
    )["s"]
    return total or 0
