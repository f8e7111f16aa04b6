import pytest

from tests.finetune.factories import DatasetFactory


@pytest.fixture
def dataset(org):
    return DatasetFactory(organization=org)
