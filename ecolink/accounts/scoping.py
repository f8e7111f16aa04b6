"""The one way views reach organization-owned rows, so none can forget the org filter."""

from typing import TypeVar

from django.db.models import Model, QuerySet
from django.http import HttpRequest
from django.shortcuts import get_object_or_404

from ecolink.accounts.models import Membership, Organization

M = TypeVar("M", bound=Model)


def organizations_for_user(user) -> QuerySet[Organization]:
    if not user.is_authenticated:
        return Organization.objects.none()
    return Organization.objects.filter(memberships__user=user).order_by("name")


def current_organization(request: HttpRequest) -> Organization | None:
    """The organization the user is acting for: the one chosen in the session, if the
    user still belongs to it, else their first (personal first). Cached on the request."""
    cached: Organization | None
    if not hasattr(request, "_current_organization"):
        orgs = organizations_for_user(request.user)
        chosen = request.session.get("org_id")
        org = orgs.filter(pk=chosen).first() if chosen is not None else None
        cached = org or orgs.order_by("-personal", "created_at").first()
        request._current_organization = cached  # type: ignore[attr-defined]
    return request._current_organization  # type: ignore[attr-defined]


def org_queryset(request: HttpRequest, model_or_qs: type[M] | QuerySet[M]) -> QuerySet[M]:
    """Rows of `model_or_qs` owned by the request's organization (none when there is none)."""
    qs = model_or_qs if isinstance(model_or_qs, QuerySet) else model_or_qs._default_manager.all()
    org = current_organization(request)
    if org is None:
        return qs.none()
    return qs.filter(organization=org)


def get_for_org(request: HttpRequest, model_or_qs: type[M] | QuerySet[M], **lookup) -> M:
    """One row owned by the request's organization, or 404: another org's id looks missing."""
    return get_object_or_404(org_queryset(request, model_or_qs), **lookup)


def membership_for(request: HttpRequest) -> Membership | None:
    org = current_organization(request)
    if org is None or not request.user.is_authenticated:
        return None
    return Membership.objects.filter(user=request.user, organization=org).first()
