"""schemathesis fuzzes both served schemas with a valid key: no answer may be a 5xx."""

import subprocess
import sys
from pathlib import Path

import pytest

from ecolink.api.keys import api_key_create
from tests.factories import OrganizationFactory, fund
from tests.finetune.factories import DatasetFactory, JobFactory

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]
SCHEMATHESIS = Path(sys.executable).with_name("schemathesis")


@pytest.mark.parametrize("schema", ["/v1/openapi.json", "/api/v1/openapi.json"])
def test_fuzzing_the_schema_finds_no_server_error(
    schema, live_server, catalog, settings, tmp_path, redis_client
):
    settings.STORAGES = {
        **settings.STORAGES,
        "default": {
            "BACKEND": "django.core.files.storage.FileSystemStorage",
            "OPTIONS": {"location": str(tmp_path / "artifacts")},
        },
    }
    org = OrganizationFactory()
    fund(org, 50_000_000)
    job = JobFactory(organization=org)  # something to list, look up, pause and cancel
    dataset = DatasetFactory(organization=org)
    _, key = api_key_create(organization=org, name="fuzz")
    # Real ids for the path parameters, so fuzzing reaches past the 404s.
    (tmp_path / "schemathesis.toml").write_text(
        "[parameters]\n"
        f'"path.fine_tuning_job_id" = "ftjob-{job.pk}"\n'
        f'"path.job_id" = "ftjob-{job.pk}"\n'
        f'"path.file_id" = "file-{dataset.pk}"\n'
    )
    result = subprocess.run(
        [
            str(SCHEMATHESIS),
            "run",
            f"{live_server.url}{schema}",
            "--header",
            f"Authorization: Bearer {key}",
            "--checks",
            "not_a_server_error",
            "--max-examples",
            "40",
            "--generation-deterministic",
            "--request-timeout",
            "30",
            "--no-color",
            # Free-form model ids in the path: most generated strings can't be a URL
            # segment, which is a generator concern, not a finding.
            "--suppress-health-check",
            "filter_too_much",
        ],
        capture_output=True,
        text=True,
        timeout=540,
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]
