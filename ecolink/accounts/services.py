"""Writes for users, organizations and memberships."""

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import User
from django.db import transaction
from django.utils.text import slugify

from ecolink.accounts.models import Membership, Organization
from ecolink.billing.models import LedgerEntry
from ecolink.billing.services import ledger_post


def _unique_slug(name: str) -> str:
    base = slugify(name)[:60] or "org"
    slug, n = base, 1
    while Organization.objects.filter(slug=slug).exists():
        n += 1
        slug = f"{base}-{n}"
    return slug


@transaction.atomic
def organization_create(
    *, name: str, owner: User, personal: bool = False, slug: str | None = None
) -> Organization:
    org = Organization.objects.create(name=name, slug=slug or _unique_slug(name), personal=personal)
    Membership.objects.create(user=owner, organization=org, role=Membership.Role.OWNER)
    return org


def membership_add(*, organization: Organization, user: User, role: str) -> Membership:
    membership, _ = Membership.objects.get_or_create(
        organization=organization, user=user, defaults={"role": role}
    )
    return membership


@transaction.atomic
def user_signup(*, username: str, email: str, password: str) -> User:
    """Create a user with a personal organization and its signup credit."""
    user = get_user_model().objects.create_user(username=username, email=email, password=password)
    org = organization_create(name=f"{username}'s workspace", owner=user, personal=True)
    if settings.SIGNUP_CREDIT_MICROS:
        ledger_post(
            organization_id=org.pk,
            amount_micros=settings.SIGNUP_CREDIT_MICROS,
            key=f"signup:{org.pk}",
            kind=LedgerEntry.Kind.SIGNUP_CREDIT,
            description="Welcome credit",
        )
    return user
