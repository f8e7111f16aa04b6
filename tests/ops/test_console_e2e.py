"""The operator console in a real browser, on data from a real run: a job trained by the
real trainer in a local pod, metered and registered, and a job stuck waiting for GPUs
that an operator marks failed with a reason."""

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from ecolink.catalog.models import GpuType, Region
from ecolink.finetune.models import Job
from ecolink.ops import throughput
from ecolink.ops.models import AuditLog
from tests.e2e.conftest import log_in
from tests.factories import PASSWORD, OrganizationFactory, fund, member_of
from tests.finetune import test_running as running
from tests.finetune.factories import JobFactory

pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def platform(tmp_path, tiny_model_dir, live_server, settings, redis_client, catalog):
    platform = running.Platform(tmp_path, tiny_model_dir, live_server, settings)
    yield platform
    platform.stop()


def test_the_dashboard_shows_a_real_run_and_an_operator_fails_a_stuck_job(
    platform,
    operator,
    page,
):
    platform.start(minute_seconds=60)
    org = OrganizationFactory(name="Acme Research")
    fund(org, 5_000_000)
    job = running.approve(org, member_of(org), running.ready_dataset(platform, org))
    # No A100 40 GB in US East: this one waits for capacity for ever.
    stuck = JobFactory(
        organization=org,
        name="stuck-in-queue",
        status=Job.Status.QUEUED,
        region=Region.objects.get(slug="us-east"),
        gpu_type=GpuType.objects.get(slug="nvidia-a100-40gb"),
    )
    running.wait_for(
        lambda: running.status_of(job) == Job.Status.REGISTERED,
        300,
        "the real run to register",
        platform.log,
    )
    job.refresh_from_db()
    bill = running.job_bill(job)
    assert bill > 0 and job.finished_at <= timezone.now()

    log_in(page, operator.username, PASSWORD)
    page.goto("/ops/")
    expect(page.get_by_role("heading", name="Operations")).to_be_visible()
    expect(page.get_by_test_id("queued-count")).to_have_text("1")
    expect(page.get_by_test_id("revenue-24h")).not_to_have_text("$0.00")
    inside = job.estimate_low_micros <= bill <= job.estimate_high_micros
    expect(page.get_by_test_id("accuracy-share")).to_have_text("100%" if inside else "0%")
    expect(page.get_by_test_id("capacity-table")).to_contain_text("Local machine")
    for chart in ("capacity", "status", "revenue", "accuracy"):
        expect(page.get_by_test_id(f"chart-{chart}").locator("rect").first).to_be_attached()
    expect(page.get_by_test_id("chart-status")).to_contain_text("Registered")
    expect(page.get_by_test_id("mismatches")).to_have_text("0")

    # The stuck job, from the admin: the reason is required before anything happens.
    page.goto(f"/admin/finetune/job/{stuck.pk}/change/")
    page.click("a[data-action=mark_failed]")
    page.get_by_role("button", name="Mark failed").click()
    assert Job.objects.get(pk=stuck.pk).status == Job.Status.QUEUED  # the browser refused
    page.fill("textarea[name=reason]", "No A100 40 GB will ever free up in us-east")
    page.get_by_role("button", name="Mark failed").click()
    expect(page.locator(".messagelist")).to_contain_text("Mark failed: done")
    assert Job.objects.get(pk=stuck.pk).status == Job.Status.FAILED
    assert AuditLog.objects.get().operator_name == operator.username

    page.goto("/ops/")
    expect(page.get_by_test_id("chart-failures")).to_contain_text("operator")
    expect(page.get_by_test_id("queued-count")).to_have_text("0")
    expect(page.get_by_test_id("audit-table")).to_contain_text("No A100 40 GB")

    # The real run's page: its log file, billing session and events inline.
    page.goto(f"/admin/finetune/job/{job.pk}/change/")
    expect(page.locator("pre.ops-log")).not_to_have_text("(no log)")
    expect(page.locator("#sessions-group")).to_contain_text("Local CPU")
    expect(page.locator("#events-group")).to_contain_text("Registered as")
    expect(page.locator("a[data-action=cancel]")).to_have_count(0)  # nothing to cancel

    page.goto("/ops/throughput/")
    expect(page.get_by_role("heading", name="Observed throughput")).to_be_visible()
    if throughput.observe(job) is not None:  # a run longer than its fixed phases
        expect(page.get_by_test_id("throughput-group").first).to_contain_text("Local CPU")
