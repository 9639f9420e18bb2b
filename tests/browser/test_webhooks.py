"""The webhooks settings page in Chromium: empty state, add an endpoint, the secret shown once, the endpoint page."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from tests.browser.conftest import committed_owner
from tests.browser.pagecheck import SIZES, check_page
from tests.factories import PASSWORD


@pytest.fixture
def owner(app):
    with app.app_context():
        from morket.extensions import db

        workspace, _ = committed_owner(
            email="hooks@example.com", name="Hook Owner", slug="hook-co", workspace_name="Hook Co", password=PASSWORD
        )
        db.session.commit()
        return workspace.slug


@pytest.mark.parametrize("size", ["1366x768", "390x844"])
def test_add_an_endpoint_and_see_its_secret_once(live_server, browser_page, owner, size):
    page = browser_page
    width, height = SIZES[size]
    page.set_viewport_size({"width": width, "height": height})
    page.goto(f"{live_server}/login")
    page.fill("#email", "hooks@example.com")
    page.fill("#password", PASSWORD)
    page.click("form button[type=submit]")
    expect(page.locator("#user-menu")).to_be_attached()
    page.goto(f"{live_server}/w/{owner}/webhooks")
    expect(page.get_by_text("No webhook endpoints yet")).to_be_visible()
    problems = check_page(page, "webhooks-empty", size)
    page.fill("#url", "https://93.184.216.34/hooks/morket")
    page.fill("#description", "CRM sync service")
    page.check("input[value='row.created']")
    page.check("input[value='import.finished']")
    page.click("#add-webhook button[type=submit]")
    secret = page.locator("#webhook-secret-value")
    expect(secret).to_be_visible()
    value = secret.inner_text()
    assert value.startswith("whsec_") and len(value) > 40
    problems += check_page(page, "webhooks-secret", size)
    page.goto(f"{live_server}/w/{owner}/webhooks")
    expect(page.locator("#webhook-endpoints")).to_contain_text("https://93.184.216.34/hooks/morket")
    assert value not in page.content()
    problems += check_page(page, "webhooks-list", size)
    page.click("#webhook-endpoints a")
    expect(page.locator("#webhook-deliveries")).to_contain_text("No deliveries yet")
    assert value not in page.content()
    problems += check_page(page, "webhooks-endpoint", size)
    assert not problems, "\n".join(problems)
    assert not page.problems, page.problems
