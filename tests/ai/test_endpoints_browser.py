"""In a real browser: an owner reaches AI models from the Settings group, adds an endpoint on the
sandbox LLM, tests it in place, sees the key masked, and deletes it."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from tests.browser.conftest import browser_page, committed_owner, live_server  # noqa: F401 - the browser fixtures
from tests.browser.pagecheck import screenshot
from tests.factories import PASSWORD

KEY = "sandbox-browser-key-4d2e"


@pytest.fixture
def loopback_endpoints(monkeypatch):
    """The live server (created after this fixture) lets endpoints use loopback: the sandbox LLM."""
    monkeypatch.setenv("MORKET_AI_ALLOW_LOOPBACK", "true")


def test_add_test_and_delete_an_endpoint(app, sandbox_server, loopback_endpoints, live_server, browser_page):  # noqa: F811
    from morket.extensions import db

    with app.app_context():
        workspace, _ = committed_owner(
            email="ada@example.com", name="Ada", slug="ada-ai", workspace_name="Ada AI", password=PASSWORD
        )
        db.session.commit()
        slug = workspace.slug
    page, base = browser_page, live_server
    page.goto(f"{base}/login")
    page.fill("#email", "ada@example.com")
    page.fill("#password", PASSWORD)
    page.click("form button[type=submit]")
    page.goto(f"{base}/w/{slug}/")
    page.click("nav[aria-label=Workspace] >> text=AI models")
    expect(page.locator("#ai-endpoints")).to_contain_text("No model endpoints yet")

    page.fill("#name", "Sandbox OpenAI")
    page.select_option("#kind", "openai")
    page.fill("#base_url", sandbox_server.url("openai") + "/v1")
    page.fill("#model", "sandbox-small")
    page.fill("#models", "sandbox-large")
    expect(page.locator("#api_key")).to_have_attribute("type", "password")
    page.fill("#api_key", KEY)
    page.click("#add-endpoint button[type=submit]")
    page.wait_for_load_state("load")
    row = page.locator("#ai-endpoints tbody tr[id^=endpoint-]")
    expect(row).to_have_count(1)
    expect(row).to_contain_text("••••4d2e")
    expect(row).to_contain_text("sandbox-large")
    assert KEY not in page.content()

    page.click("#ai-endpoints button:text('Test')")
    probe = page.locator("#ai-endpoints .ai-probe-ok")
    expect(probe).to_contain_text('sandbox-small answered: Sandbox answer about "Say hello."')
    screenshot(page, "ai-models", "1280x860")

    page.once("dialog", lambda dialog: dialog.accept())
    page.click("#ai-endpoints button.danger")
    expect(page.locator("#ai-endpoints")).to_contain_text("No model endpoints yet")
    assert page.problems == []
