import factory
from django.contrib.auth import get_user_model

from ecolink.accounts.models import Membership, Organization
from ecolink.billing.models import LedgerEntry
from ecolink.billing.services import ledger_post

PASSWORD = "correct-horse-battery"


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = get_user_model()
        skip_postgeneration_save = True

    username = factory.Sequence(lambda n: f"user{n}")
    email = factory.LazyAttribute(lambda u: f"{u.username}@example.com")
    password = factory.PostGenerationMethodCall("set_password", PASSWORD)

    @factory.post_generation
    def save_password(obj, create, extracted, **kwargs):
        if create:
            obj.save()


class OrganizationFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Organization

    name = factory.Sequence(lambda n: f"Org {n}")
    slug = factory.Sequence(lambda n: f"org-{n}")


class MembershipFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Membership

    user = factory.SubFactory(UserFactory)
    organization = factory.SubFactory(OrganizationFactory)
    role = Membership.Role.OWNER


def member_of(organization: Organization, **kwargs):
    """A new user who belongs to `organization`."""
    return MembershipFactory(organization=organization, **kwargs).user


def fund(org: Organization, micros: int, key: str = "fund") -> None:
    """Credit (or, negative, debit) an organization through the ledger."""
    ledger_post(
        organization_id=org.pk,
        amount_micros=micros,
        key=f"{key}:{org.pk}",
        kind=LedgerEntry.Kind.ADJUSTMENT,
    )
