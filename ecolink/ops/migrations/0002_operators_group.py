"""The "Operators" group: what staff running the platform may see and do in the admin.

Ledger, billing sessions and Stripe events are view-only: no permission lets anyone change
them. Money moves only through the audited adjustment form (`ops.adjust_balance`).
"""

from django.contrib.auth.management import create_permissions
from django.db import migrations

GROUP = "Operators"
PERMISSIONS = {
    "catalog": {
        "basemodel": ("add", "change", "view"),
        "gputype": ("add", "change", "view"),
        "region": ("add", "change", "view"),
        "regioncapacity": ("add", "change", "delete", "view"),
        "throughputefficiency": ("add", "change", "view"),
    },
    "finetune": {"job": ("view",), "jobevent": ("view",)},
    "billing": {"ledgerentry": ("view",), "billingsession": ("view",), "stripeevent": ("view",)},
    "accounts": {"organization": ("view",), "membership": ("view",)},
    "datasets": {"dataset": ("view",)},
    "ops": {"auditlog": ("view",)},
}
CUSTOM = ("view_dashboard", "operate_job", "adjust_balance", "update_efficiency")


def codenames():
    for app_label, models in PERMISSIONS.items():
        for model, actions in models.items():
            for action in actions:
                yield app_label, f"{action}_{model}"
    for codename in CUSTOM:
        yield "ops", codename


def create_group(apps, schema_editor):
    # On a fresh database the permissions are made after all migrations (post_migrate):
    # make them now so the group can hold them.
    for app_config in apps.get_app_configs():
        app_config.models_module = True
        create_permissions(app_config, verbosity=0, apps=apps)
        app_config.models_module = None
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    group, _ = Group.objects.get_or_create(name=GROUP)
    for app_label, codename in codenames():
        group.permissions.add(
            Permission.objects.get(content_type__app_label=app_label, codename=codename)
        )


def delete_group(apps, schema_editor):
    apps.get_model("auth", "Group").objects.filter(name=GROUP).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("ops", "0001_initial"),
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
        ("accounts", "0001_initial"),
        ("billing", "0003_ledgerentry_job_stripeevent"),
        ("catalog", "0002_gputype_dataset_prep_seconds_and_more"),
        ("datasets", "0002_dataset_splits_and_options"),
        ("finetune", "0002_job_adapter_path_job_automatic_retries_and_more"),
    ]

    operations = [migrations.RunPython(create_group, delete_group)]
