"""/billing: the balance, the statement, top-ups (Stripe Checkout or test mode) and
Stripe's webhook. Views parse and render; money moves in services."""

import logging
import uuid
from urllib.parse import quote

import stripe
from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.http import Http404, HttpResponseBadRequest, HttpResponseRedirect, JsonResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from ecolink.accounts.scoping import current_organization, get_for_org
from ecolink.billing import selectors
from ecolink.billing.forms import TopupForm
from ecolink.billing.models import LedgerEntry, StripeEvent
from ecolink.billing.services import (
    StripeEventRejected,
    TopupRefused,
    checkout_session_create,
    checkout_session_credit,
    checkout_session_organization_id,
    checkout_session_retrieve,
    stripe_event_handle,
    topup_test_mode,
)
from ecolink.finetune.models import Job

logger = logging.getLogger(__name__)


def _safe_next(request) -> str:
    target = request.POST.get("next") or request.GET.get("next") or ""
    if url_has_allowed_host_and_scheme(target, allowed_hosts={request.get_host()}):
        return target
    return ""


def _plain_dollars(cents: int) -> str:
    return f"{cents // 100}.{cents % 100:02d}"


@login_required
def billing(request, topup_form: TopupForm | None = None):
    org = current_organization(request)
    if org is None:
        raise Http404("No organization.")
    lines = selectors.statement_lines(organization_id=org.pk)
    page = Paginator(lines, 50).get_page(request.GET.get("page"))
    kinds = dict(LedgerEntry.Kind.choices)
    for line in page:
        line["kind_label"] = kinds.get(line["line_kind"], "")
    return render(
        request,
        "billing/billing.html",
        {
            "org": org,
            "page": page,
            "test_mode": settings.TEST_MODE_TOPUP,
            "stripe_enabled": bool(settings.STRIPE_SECRET_KEY),
            "topup_min_dollars": _plain_dollars(settings.TOPUP_MIN_CENTS),
            "topup_max_dollars": _plain_dollars(settings.TOPUP_MAX_CENTS),
            "topup_form": topup_form or TopupForm(initial={"nonce": uuid.uuid4()}),
            "nonce": uuid.uuid4(),
            "next": _safe_next(request),
        },
        status=400 if topup_form is not None else 200,
    )


@login_required
def job_statement(request, job_id: int):
    """Every ledger entry of one job, newest first."""
    job = get_for_org(request, Job, pk=job_id)
    entries = selectors.job_entries(organization_id=job.organization_id, job_id=job.pk)
    page = Paginator(entries, 100).get_page(request.GET.get("page"))
    return render(request, "billing/job_statement.html", {"job": job, "page": page})


@login_required
@require_POST
def test_topup(request):
    amount = request.POST.get("amount_dollars", "")
    nonce = request.POST.get("nonce", "")
    try:
        uuid.UUID(nonce)
        cents = int(amount) * 100
    except ValueError:
        messages.error(request, "Enter a whole number of dollars.")
        return redirect("billing:billing")
    try:
        topup_test_mode(
            organization_id=current_organization(request).pk, amount_cents=cents, nonce=nonce
        )
    except TopupRefused as refused:
        messages.error(request, str(refused))
        return redirect("billing:billing")
    messages.success(request, f"Added ${cents // 100:,} (test mode, no payment taken).")
    return redirect(_safe_next(request) or reverse("billing:billing"))


@login_required
@require_POST
def checkout(request):
    """Start a card top-up: create a Checkout session and send the payer to Stripe."""
    form = TopupForm(request.POST)
    if not form.is_valid():
        return billing(request, topup_form=form)
    next_url = _safe_next(request)
    # Stripe fills in {CHECKOUT_SESSION_ID}: it must reach Stripe unescaped.
    success_url = (
        request.build_absolute_uri(reverse("billing:checkout_success"))
        + "?session_id={CHECKOUT_SESSION_ID}"
        + (f"&next={quote(next_url, safe='')}" if next_url else "")
    )
    cancel_url = request.build_absolute_uri(reverse("billing:billing")) + (
        f"?next={quote(next_url, safe='')}" if next_url else ""
    )
    try:
        url = checkout_session_create(
            organization_id=current_organization(request).pk,
            amount_cents=form.amount_cents,
            success_url=success_url,
            cancel_url=cancel_url,
            nonce=str(form.cleaned_data["nonce"]),
        )
    except TopupRefused as refused:
        messages.error(request, str(refused))
        return redirect("billing:billing")
    except stripe.StripeError as error:
        logger.warning("Checkout session not created: %s", type(error).__name__)
        messages.error(request, "Stripe could not start the payment. Try again in a moment.")
        return redirect("billing:billing")
    response = HttpResponseRedirect(url)
    response.status_code = 303  # See Other: the browser GETs Stripe's page
    return response


@login_required
def checkout_success(request):
    """Where Stripe sends the payer back: credit the session if it is paid (the webhook may
    not have arrived yet) and say so."""
    session_id = request.GET.get("session_id", "")
    org = current_organization(request)
    if not session_id.startswith("cs_") or org is None:
        raise Http404("No such Checkout session.")
    try:
        session = checkout_session_retrieve(session_id=session_id)
    except stripe.StripeError as error:
        logger.warning("Checkout session %s not retrieved: %s", session_id, type(error).__name__)
        session = None
    if session is not None and checkout_session_organization_id(session) != org.pk:
        raise Http404("No such Checkout session.")
    credit = checkout_session_credit(session=session) if session else None
    org.refresh_from_db(fields=["balance_micros"])
    credited = credit is not None and credit.result in {
        StripeEvent.Result.CREDITED,
        StripeEvent.Result.ALREADY_CREDITED,
    }
    return render(
        request,
        "billing/checkout_success.html",
        {
            "org": org,
            "credited": credited,
            "amount_micros": credit.amount_micros if credit else None,
            "session_id": session_id,
            "next": _safe_next(request),
        },
    )


@csrf_exempt
@require_POST
def stripe_webhook(request):
    try:
        outcome = stripe_event_handle(
            payload=request.body, sig_header=request.headers.get("Stripe-Signature")
        )
    except StripeEventRejected as rejected:
        return HttpResponseBadRequest(str(rejected), content_type="text/plain")
    return JsonResponse({"result": outcome.event.result, "duplicate": outcome.duplicate})
