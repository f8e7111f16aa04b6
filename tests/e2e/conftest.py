"""Browser tests: Playwright driving Debian's Chromium against pytest-django's live server.

The `browser` and `page` fixtures live in tests/conftest.py, so that every package's browser
tests share one Playwright instance (two sync instances in one process refuse to run)."""

import pytest


def pytest_collection_modifyitems(items):
    for item in items:
        if "/e2e/" in str(item.fspath):
            item.add_marker(pytest.mark.e2e)


def log_in(page, username: str, password: str) -> None:
    page.goto("/accounts/login/")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", password)
    page.click("button[type=submit]")
    page.wait_for_url("**/")
