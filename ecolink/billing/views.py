import uuid

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_POST

from ecolink.accounts.scoping import current_organization, org_queryset
from ecolink.billing.models import LedgerEntry
from ecolink.billing.services import TopupRefused, topup_test_mode


def _safe_next(request) -> str:
    target = request.POST.get("next") or request.GET.get("next") or ""
    if url_has_allowed_host_and_scheme(target, allowed_hosts={request.get_host()}):
        return target
    return ""


@login_required
def billing(request):
    entries = org_queryset(request, LedgerEntry).order_by("-created_at", "-id")
    page = Paginator(entries, 50).get_page(request.GET.get("page"))
    return render(
        request,
        "billing/billing.html",
        {
            "org": current_organization(request),
            "page": page,
            "test_mode": settings.TEST_MODE_TOPUP,
            "nonce": uuid.uuid4(),
            "next": _safe_next(request),
        },
    )


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
