import pytest

from tests.factories import OrganizationFactory, fund
from tests.finetune.factories import DatasetFactory


@pytest.fixture
def org(catalog):
    org = OrganizationFactory()
    fund(org, 100_000_000)
    return org


@pytest.fixture
def dataset(org):
    return DatasetFactory(organization=org)
