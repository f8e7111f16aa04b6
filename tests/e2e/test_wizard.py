import re

from playwright.sync_api import expect

from ecolink.billing.models import LedgerEntry
from ecolink.billing.services import ledger_post
from ecolink.catalog.services import catalog_seed, tiny_model_register
from ecolink.finetune.models import Job
from tests.e2e.conftest import log_in
from tests.factories import PASSWORD, OrganizationFactory, member_of
from tests.finetune.factories import DatasetFactory


def test_walk_six_steps_see_qlora_top_up_and_approve(
    page, transactional_db, tiny_model_dir, settings
):
    settings.TEST_MODE_TOPUP = True
    catalog_seed()
    tiny_model_register(path=tiny_model_dir)
    org = OrganizationFactory()
    ledger_post(
        organization_id=org.pk, amount_micros=50_000, key="start", kind=LedgerEntry.Kind.ADJUSTMENT
    )
    user = member_of(org)
    dataset = DatasetFactory(organization=org, name="support-chats")
    log_in(page, user.username, PASSWORD)

    # 1. Arriving from the dataset's Train button: the dataset is prefilled.
    page.goto(f"/fine-tune/new?dataset={dataset.pk}")
    expect(page.locator("#id_dataset")).to_have_value(str(dataset.pk))
    expect(page.get_by_test_id("dataset-summary")).to_contain_text("1200 examples")
    page.get_by_role("button", name="Next").click()

    # 2. A 7B base.
    expect(page.get_by_role("heading", name="2. Base model")).to_be_visible()
    page.select_option("#id_base_model", label="Mistral 7B Instruct v0.3")
    page.get_by_role("button", name="Next").click()

    # 3. A small GPU: the planner explains the switch to 4-bit QLoRA.
    expect(page.get_by_role("heading", name="3. GPU type and count")).to_be_visible()
    page.select_option("#id_gpu_type", label="NVIDIA T4 16 GB")
    page.select_option("#id_region", label="US East")
    expect(page.get_by_test_id("method-banner")).to_contain_text("4-bit QLoRA")
    page.get_by_role("button", name="Next").click()

    # 4. Tier 1 defaults from seed 001; the advanced tier is folded away.
    expect(page.locator("#id_epochs")).to_have_value("3")
    expect(page.locator("#id_lora_r")).to_have_value("16")
    expect(page.locator("#id_lora_dropout")).not_to_be_visible()
    page.get_by_role("button", name="Next").click()

    # 5. The cost as a range, and the balance after the upper bound.
    expect(page.get_by_test_id("estimate-range")).to_contain_text("–")
    expect(page.get_by_test_id("balance-now")).to_have_text("$0.05")
    page.get_by_role("button", name="Next").click()

    # 6. Too little balance: Approve is disabled, with a way to top up.
    approve = page.get_by_test_id("approve")
    expect(approve).to_be_disabled()
    page.get_by_test_id("top-up-link").click()
    page.fill("input[name=amount_dollars]", "50")
    page.get_by_test_id("test-topup").click()

    # Back on step 6 with the money: Approve & Train works.
    expect(page).to_have_url(re.compile(r"/fine-tune/new\?step=6$"))
    expect(approve).to_be_enabled()
    approve.click()
    expect(page).to_have_url(re.compile(r"/fine-tune/\d+$"))
    job = Job.objects.get()
    assert job.method == "qlora"
    assert job.status == Job.Status.QUEUED
    expect(page.get_by_test_id("job-status")).to_have_text("Queued")
