"""In a real browser: an owner connects HubSpot through its consent page and sees the account and scopes."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from tests.browser.conftest import browser_page, committed_owner, live_server  # noqa: F401 - the browser fixtures
from tests.browser.pagecheck import check_page
from tests.crm.conftest import CLIENTS
from tests.factories import PASSWORD


@pytest.fixture
def crm_env(monkeypatch, sandbox_server):
    """Settings that the live server reads at start: the CRM sandboxes and Morket's OAuth clients there."""
    base = sandbox_server.base
    values = {**CLIENTS, "HUBSPOT_API_URL": f"{base}/hubspot", "HUBSPOT_AUTH_URL": f"{base}/hubspot",
              "SALESFORCE_LOGIN_URL": f"{base}/salesforce"}  # fmt: skip
    for key, value in values.items():
        monkeypatch.setenv(f"MORKET_{key}", value)
    return base


def test_connect_hubspot_through_its_consent_page(crm_env, app, live_server, browser_page):  # noqa: F811
    from morket.extensions import db

    with app.app_context():
        committed_owner(email="rio@example.com", name="Rio", slug="rio-co", workspace_name="Rio Co", password=PASSWORD)
        db.session.commit()
    page, base = browser_page, live_server
    page.goto(f"{base}/login")
    page.fill("#email", "rio@example.com")
    page.fill("#password", PASSWORD)
    page.click("form button[type=submit]")
    page.goto(f"{base}/w/rio-co/")
    page.click("nav[aria-label=Workspace] >> text=Connections")
    hubspot = page.locator("#crm-hubspot")
    expect(hubspot).to_contain_text("HubSpot is not connected")
    expect(hubspot).to_contain_text("Send enriched rows to HubSpot")
    problems = check_page(page, "crm-connections-empty", "1366x768")

    hubspot.get_by_role("button", name="Connect HubSpot").click()
    expect(page.get_by_role("heading", name="Morket wants to connect to morket-demo.hubspot.com")).to_be_visible()
    screenshot_consent = page.screenshot(path=str(check_page.__globals__["SCREENSHOTS"] / "crm-hubspot-consent.png"))
    assert screenshot_consent
    page.get_by_role("button", name="Allow").click()

    expect(page.locator("#toasts")).to_contain_text("Connected HubSpot (morket-demo.hubspot.com)")
    expect(hubspot.locator("[data-account]")).to_contain_text("morket-demo.hubspot.com")
    expect(hubspot.locator("[data-scopes]")).to_contain_text("crm.objects.contacts.write")
    expect(hubspot.locator("[data-health]")).to_have_text("Connected")
    hubspot.locator("summary", has_text="What Morket can write in HubSpot").click()
    expect(hubspot.locator(".crm-field-list").first).to_contain_text("email")
    problems += check_page(page, "crm-connections-hubspot", "1366x768")
    page.set_viewport_size({"width": 390, "height": 844})
    page.reload()
    hubspot.locator("summary", has_text="What Morket can write in HubSpot").click()
    expect(hubspot.locator(".crm-field-list").first).to_contain_text("email")
    problems += check_page(page, "crm-connections-hubspot", "390x844")
    assert problems == []
    assert page.problems == []
