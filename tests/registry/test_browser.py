"""In a real browser: deploy a registered job's adapter from the job page, chat with it in
the streaming playground, and undeploy it."""

import pytest
from playwright.sync_api import expect

from tests.e2e.conftest import log_in
from tests.factories import PASSWORD, member_of
from tests.trainer.conftest import ANSWER

pytestmark = pytest.mark.e2e


def test_deploy_from_the_job_page_and_chat_in_the_playground(page, org, register, local_instance):
    adapter = register(org)
    user = member_of(org)
    log_in(page, user.username, PASSWORD)

    page.goto(f"/fine-tune/{adapter.job_id}")
    panel = page.get_by_test_id("deploy-panel")
    expect(panel.get_by_test_id("deploy-status")).to_have_text("Not deployed")
    panel.get_by_test_id("deploy").click()

    expect(panel.get_by_test_id("deploy-status")).to_have_text("Deployed")
    expect(panel.get_by_test_id("deploy-model-id")).to_have_text(adapter.model_id)
    expect(panel.get_by_test_id("snippet-python")).to_contain_text(f'model="{adapter.model_id}"')
    expect(panel.get_by_test_id("snippet-curl")).to_contain_text("/v1/chat/completions")

    panel.get_by_test_id("playground-input").fill("hello, what does the model say?")
    panel.get_by_test_id("playground-send").click()
    answer = panel.get_by_test_id("playground-answer")
    expect(answer).to_have_text(ANSWER)
    expect(answer).to_have_attribute("data-done", "true")

    panel.get_by_test_id("undeploy").click()
    expect(panel.get_by_test_id("deploy-status")).to_have_text("Not deployed")
    expect(panel.get_by_test_id("playground")).to_have_count(0)
