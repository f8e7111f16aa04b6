"""The meter: GPU time charged per billing minute against the organization's balance.

Minute k of a session covers [started_at + k·M, started_at + (k+1)·M) and is charged when
it starts (`meter:<session>:<k>`), at the GPU type's rate at that moment, and only while the
organization's balance is above zero: so a balance never goes more than one minute below
zero. When it cannot cover a session's next minute, that job is paused. When a session
ends (pod exit, pause, cancel), `session_settle` charges the minutes it started that no
tick has charged yet, rounded up, under `settle:<session>`.

One tick is a handful of set-based queries whatever the number of live sessions: the
sessions and their organizations are locked, entries inserted in one statement, balances
and sessions updated in one statement each.
"""

import math
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from ecolink.accounts.models import Organization
from ecolink.billing.models import BillingSession, LedgerEntry
from ecolink.billing.rates import billed_minutes, minute_charge_micros
from ecolink.billing.services import ledger_post

# One meter entry: (organization, key, amount, balance after, description, job).
Entry = tuple[int, str, int, int, str, int]
# One session's charge this tick: (session, minutes, micro-dollars).
SessionCharge = tuple[int, int, int]


@dataclass
class TickResult:
    charged_minutes: int = 0
    charged_micros: int = 0
    # Jobs whose organization can no longer pay for their next minute.
    jobs_to_pause: list[int] = field(default_factory=list)


def payable_minutes(*, balance_micros: int, charge_micros: int, wanted: int) -> int:
    """How many of `wanted` minutes may be charged: each one only while the balance is
    still above zero, so a balance never goes more than one minute below zero."""
    if wanted <= 0 or balance_micros <= 0:
        return 0
    if charge_micros <= 0:
        return wanted
    return min(wanted, -(-balance_micros // charge_micros))


def minutes_started(*, started_at: datetime, at: datetime) -> int:
    elapsed = max(0.0, (at - started_at).total_seconds())
    return math.floor(elapsed / settings.BILLING_MINUTE_SECONDS) + 1


@transaction.atomic
def meter_tick(*, now: datetime | None = None) -> TickResult:
    now = now or timezone.now()
    result = TickResult()
    sessions = list(
        BillingSession.objects.filter(ended_at__isnull=True)
        .select_for_update(of=("self",))
        .order_by("pk")
        .values_list(
            "pk",
            "organization_id",
            "job_id",
            "started_at",
            "charged_minutes",
            "gpu_count",
            "gpu_type__hourly_rate_micros",
        )
    )
    if not sessions:
        return result
    org_ids = sorted({s[1] for s in sessions})
    balances = dict(
        Organization.objects.select_for_update()
        .filter(pk__in=org_ids)
        .order_by("pk")
        .values_list("pk", "balance_micros")
    )
    entries: list[Entry] = []
    session_updates: list[SessionCharge] = []
    for pk, org, job, started, charged, count, rate in sessions:
        charge = minute_charge_micros(hourly_rate_micros=rate, gpu_count=count)
        due = minutes_started(started_at=started, at=now)
        paid = payable_minutes(
            balance_micros=balances[org], charge_micros=charge, wanted=due - charged
        )
        for minute in range(charged, charged + paid):
            balances[org] -= charge
            entries.append(
                (
                    org,
                    f"meter:{pk}:{minute}",
                    -charge,
                    balances[org],
                    f"GPU minute {minute + 1}, job {job}",
                    job,
                )
            )
        if paid:
            session_updates.append((pk, paid, paid * charge))
            result.charged_minutes += paid
            result.charged_micros += paid * charge
        if balances[org] < charge:
            result.jobs_to_pause.append(job)
    _insert_entries(entries, now)
    _apply(entries, session_updates)
    return result


def _insert_entries(entries: list[Entry], now: datetime) -> None:
    if not entries:
        return
    if connection.vendor == "postgresql":
        columns = list(zip(*entries, strict=True))
        with connection.cursor() as cursor:
            cursor.execute(
                # Table names come from the models, values travel as parameters.
                f"INSERT INTO {LedgerEntry._meta.db_table} (organization_id, key, kind, "  # noqa: S608
                "amount_micros, balance_after_micros, description, job_id, created_at) "
                "SELECT o, k, %s, a, b, d, j, %s FROM unnest("
                "%s::bigint[], %s::text[], %s::bigint[], %s::bigint[], %s::text[], %s::bigint[]"
                ") AS t(o, k, a, b, d, j)",
                [LedgerEntry.Kind.METER, now, *map(list, columns)],
            )
    else:  # the embedded SQLite default: few sessions, plain ORM
        LedgerEntry.objects.bulk_create(
            LedgerEntry(
                organization_id=o,
                key=k,
                kind=LedgerEntry.Kind.METER,
                amount_micros=a,
                balance_after_micros=b,
                description=d,
                job_id=j,
            )
            for o, k, a, b, d, j in entries
        )


def _apply(entries: list[Entry], session_updates: list[SessionCharge]) -> None:
    deltas: dict[int, int] = defaultdict(int)
    for org, _, amount, _, _, _ in entries:
        deltas[org] += amount
    org_table, session_table = Organization._meta.db_table, BillingSession._meta.db_table
    if not deltas:
        return
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute(
                f"UPDATE {org_table} o SET balance_micros = o.balance_micros + d.delta "  # noqa: S608
                "FROM unnest(%s::bigint[], %s::bigint[]) AS d(id, delta) WHERE o.id = d.id",
                [list(deltas), list(deltas.values())],
            )
            ids, minutes, micros = map(list, zip(*session_updates, strict=True))
            cursor.execute(
                f"UPDATE {session_table} s SET charged_minutes = s.charged_minutes + u.m, "  # noqa: S608
                "charged_micros = s.charged_micros + u.c "
                "FROM unnest(%s::bigint[], %s::int[], %s::bigint[]) AS u(id, m, c) "
                "WHERE s.id = u.id",
                [ids, minutes, micros],
            )
        return
    from django.db.models import F

    for org, delta in deltas.items():
        Organization.objects.filter(pk=org).update(balance_micros=F("balance_micros") + delta)
    for pk, paid_minutes, paid_micros in session_updates:
        BillingSession.objects.filter(pk=pk).update(
            charged_minutes=F("charged_minutes") + paid_minutes,
            charged_micros=F("charged_micros") + paid_micros,
        )


@transaction.atomic
def session_settle(*, session_id: int, ended_at: datetime | None = None) -> bool:
    """End a session and charge the minutes it started that no tick charged yet.

    Safe to call twice: the second call finds the session ended and does nothing.
    """
    session = (
        BillingSession.objects.select_for_update()
        .select_related("gpu_type")
        .filter(pk=session_id, ended_at__isnull=True)
        .first()
    )
    if session is None:
        return False
    ended_at = ended_at or timezone.now()
    charge = minute_charge_micros(
        hourly_rate_micros=session.gpu_type.hourly_rate_micros, gpu_count=session.gpu_count
    )
    # The partial last minute is rounded up: every started minute is billed.
    duration = (ended_at - session.started_at).total_seconds()
    remaining = billed_minutes(duration) - session.charged_minutes
    org = Organization.objects.select_for_update().get(pk=session.organization_id)
    payable = payable_minutes(
        balance_micros=org.balance_micros, charge_micros=charge, wanted=remaining
    )
    if payable:
        ledger_post(
            organization_id=org.pk,
            amount_micros=-payable * charge,
            key=f"settle:{session.pk}",
            kind=LedgerEntry.Kind.SETTLE,
            description=f"Settlement: {payable} GPU minute(s), job {session.job_id}",
            job_id=session.job_id,
        )
    BillingSession.objects.filter(pk=session.pk).update(
        ended_at=ended_at,
        charged_minutes=session.charged_minutes + payable,
        charged_micros=session.charged_micros + payable * charge,
    )
    return True
