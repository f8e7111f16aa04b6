import re

from playwright.sync_api import expect


def test_a_visitor_signs_up_logs_in_and_sees_the_balance_badge(page, transactional_db):
    page.goto("/accounts/signup/")
    page.fill("input[name=username]", "grace")
    page.fill("input[name=email]", "grace@example.com")
    page.fill("input[name=password]", "a-long-enough-passphrase")
    page.click("button[type=submit]")
    expect(page.get_by_test_id("balance-badge")).to_have_text("$5.00")

    page.get_by_role("button", name="Log out").click()
    expect(page).to_have_url(re.compile(r"/accounts/login/"))
    expect(page.get_by_test_id("balance-badge")).to_have_count(0)

    page.fill("input[name=username]", "grace")
    page.fill("input[name=password]", "a-long-enough-passphrase")
    page.click("button[type=submit]")
    expect(page.get_by_role("heading", name="Welcome, grace")).to_be_visible()
    expect(page.get_by_test_id("balance-badge")).to_have_text("$5.00")
