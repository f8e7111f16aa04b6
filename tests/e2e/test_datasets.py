"""The datasets page in a real browser, with validation on a real Celery worker."""

import re

import pytest
from playwright.sync_api import expect

from ecolink.datasets.models import Dataset
from tests.datasets.builders import jsonl, rows_of
from tests.datasets.conftest import artifacts, dataset_worker, tiny_tokenizer  # noqa: F401
from tests.factories import PASSWORD, OrganizationFactory, member_of


@pytest.fixture
def logged_in_page(page, transactional_db):
    user = member_of(OrganizationFactory())
    page.goto("/accounts/login/")
    page.fill("input[name=username]", user.username)
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    expect(page.get_by_role("link", name="Datasets")).to_be_visible()
    return page


@pytest.mark.usefixtures("dataset_worker")
def test_upload_a_file_watch_it_become_ready_and_click_train(logged_in_page, tmp_path):
    page = logged_in_page
    path = tmp_path / "support-chats.jsonl"
    path.write_bytes(jsonl(rows_of(Dataset.Format.OPENAI)))

    page.get_by_role("link", name="Datasets").click()
    page.wait_for_load_state()
    page.set_input_files("input[name=file]", str(path))
    expect(page.locator("[data-file-name]")).to_contain_text("support-chats.jsonl")
    page.get_by_role("button", name="Upload").click()
    expect(page.get_by_role("status")).to_contain_text("Uploaded support-chats: validating")

    dataset = Dataset.objects.get()
    # The row refreshes itself until the worker has settled the dataset.
    badge = page.get_by_test_id(f"status-{dataset.pk}")
    expect(badge).to_have_text("Ready to train", timeout=60_000)
    row = page.get_by_test_id(f"dataset-row-{dataset.pk}")
    expect(row).to_contain_text("OpenAI chat")
    expect(row).to_contain_text("120")

    row.get_by_role("link", name="Train").click()
    expect(page).to_have_url(re.compile(rf"/fine-tune/new\?dataset={dataset.pk}$"))


def test_drag_and_drop_fills_the_input_and_a_too_large_file_is_stopped_in_the_browser(
    logged_in_page, settings
):
    settings.DATASET_MAX_UPLOAD_BYTES = 1000
    page = logged_in_page
    page.goto("/datasets/")

    def drop(name: str, size: int) -> None:
        transfer = page.evaluate_handle(
            """([name, size]) => {
                const transfer = new DataTransfer();
                transfer.items.add(new File(["x".repeat(size)], name));
                return transfer;
            }""",
            [name, size],
        )
        page.dispatch_event("[data-dropzone]", "drop", {"dataTransfer": transfer})

    drop("small.jsonl", 10)
    expect(page.locator("[data-file-name]")).to_have_text("small.jsonl (10 bytes)")
    expect(page.get_by_role("button", name="Upload")).to_be_enabled()

    drop("big.jsonl", 5000)
    expect(page.locator("[data-upload-error]")).to_have_text(
        "The file is larger than the 1000 bytes upload limit."
    )
    expect(page.get_by_role("button", name="Upload")).to_be_disabled()
