import importlib

import pytest
from django.contrib.auth.models import Group, Permission

from tests.factories import PASSWORD, UserFactory

operators_migration = importlib.import_module("ecolink.ops.migrations.0002_operators_group")


def operators_group() -> Group:
    """The group the data migration made. A transactional test's flush empties it, so
    tests that run after one make it again from the migration's own list."""
    group, created = Group.objects.get_or_create(name=operators_migration.GROUP)
    if created:
        for app_label, codename in operators_migration.codenames():
            group.permissions.add(
                Permission.objects.get(content_type__app_label=app_label, codename=codename)
            )
    return group


@pytest.fixture
def operator(db):
    """Staff in the Operators group: no superuser powers."""
    user = UserFactory(username="ops-alice", is_staff=True)
    user.groups.add(operators_group())
    return user


@pytest.fixture
def operator_client(client, operator):
    client.login(username=operator.username, password=PASSWORD)
    return client
