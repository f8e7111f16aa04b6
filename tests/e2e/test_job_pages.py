"""The job page in Chromium while a real tiny job runs: the live loss chart, the panels per
state, and the pause → top up → Resume loop, with a real Celery worker and trainer."""

import pytest
from playwright.sync_api import expect

from ecolink.finetune.models import Job
from tests.e2e.conftest import log_in
from tests.factories import PASSWORD, OrganizationFactory, fund, member_of
from tests.finetune.test_running import approve, platform, ready_dataset, wait_for  # noqa: F401

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]
SECRET = "hf_secret_placed_in_the_environment"


def points(page) -> int:
    return int(page.get_by_test_id("loss-chart").get_attribute("data-points"))


def test_a_job_is_watched_from_training_to_registered_with_the_chart_growing(
    page,
    platform,  # noqa: F811
):
    platform.start(minute_seconds=60, ECOLINK_TRAINER_TEST_STEP_SLEEP="0.25", HF_TOKEN=SECRET)
    org = OrganizationFactory()
    fund(org, 5_000_000)
    user = member_of(org)
    job = approve(org, user, ready_dataset(platform, org))
    log_in(page, user.username, PASSWORD)
    page.goto(f"/fine-tune/{job.pk}")

    status = page.get_by_test_id("job-status")
    expect(status).to_have_text("Training", timeout=180_000)
    expect(page.get_by_test_id("job-progress")).to_contain_text("steps remaining")
    wait_for(lambda: points(page) > 0, 60, "the first chart points", platform.log)
    first = points(page)
    wait_for(lambda: points(page) > first, 60, "the chart to gain points", platform.log)

    # No reload: the polled panel moves on by itself and the polling stops.
    expect(status).to_have_text("Registered", timeout=240_000)
    expect(page.get_by_test_id("model-id")).to_have_text(
        f"ft:ecolink/tiny-qwen2:{org.slug}:{job.pk}"
    )
    expect(page.locator("#job-status")).not_to_have_attribute("hx-trigger", "every 3s")
    job.refresh_from_db()
    wait_for(lambda: points(page) == job.total_steps, 30, "every step on the chart")
    expect(page.get_by_test_id("download")).to_be_visible()
    page.reload()  # the settings card is not polled
    expect(page.get_by_test_id("checkpoint")).to_contain_text("final adapter")

    page.get_by_test_id("tab-logs").click()
    expect(page.get_by_test_id("log-lines")).to_contain_text("worker.trainer")
    page.get_by_test_id("tab-events").click()
    expect(page.get_by_test_id("events")).to_contain_text("Registered as")
    page.get_by_test_id("tab-metrics").click()
    expect(page.get_by_test_id("loss-chart")).to_have_attribute("data-points", str(job.total_steps))

    # The pod's environment held a secret: no page shows it.
    for tab in ("metrics", "logs", "events"):
        page.goto(f"/fine-tune/{job.pk}?tab={tab}")
        assert SECRET not in page.content()


def test_a_job_paused_at_zero_balance_is_topped_up_and_resumed_from_the_page(
    page,
    platform,  # noqa: F811
):
    platform.start(minute_seconds=1, ECOLINK_TRAINER_TEST_STEP_SLEEP="0.4")
    org = OrganizationFactory()
    fund(org, 5_000_000)
    user = member_of(org)
    job = approve(org, user, ready_dataset(platform, org))
    log_in(page, user.username, PASSWORD)
    page.goto(f"/fine-tune/{job.pk}")
    wait_for(lambda: Job.objects.get(pk=job.pk).current_step >= 6, 180, "training", platform.log)

    org.refresh_from_db()
    fund(org, -(org.balance_micros - 30_000), key="spent-elsewhere")
    banner = page.get_by_test_id("paused-banner")
    expect(banner).to_contain_text("Balance reached zero", timeout=120_000)
    expect(page.get_by_test_id("resume")).to_be_disabled()
    expect(page.get_by_test_id("resume-why")).to_contain_text("Resume needs a balance of")
    paused_step = Job.objects.get(pk=job.pk).checkpoint_step
    assert paused_step > 0

    page.get_by_test_id("top-up").click()
    page.wait_for_url("**/billing/**")
    page.get_by_test_id("test-topup").click()
    # Back on the job, with Resume enabled.
    page.wait_for_url(f"**/fine-tune/{job.pk}")
    resume = page.get_by_test_id("resume")
    expect(resume).to_be_enabled()
    resume.click()
    expect(page.get_by_test_id("job-status")).not_to_have_text("Paused")
    expect(page.get_by_test_id("job-status")).to_have_text("Registered", timeout=240_000)
    job.refresh_from_db()
    assert job.current_step == job.total_steps
    assert job.sessions.count() == 2
