"""In a real browser, sandbox mode: pull a HubSpot list into a new table; members who leave the list
are removed by the next pull when the source says so."""

from __future__ import annotations

import httpx
from playwright.sync_api import expect

from tests.browser.conftest import browser_page, committed_owner, live_server  # noqa: F401 - the browser fixtures
from tests.browser.pagecheck import check_page
from tests.crm.conftest import CLIENTS
from tests.crm.test_browser import crm_env  # noqa: F401 - the CRM sandboxes for the live server
from tests.crm.test_pull import contacts
from tests.factories import PASSWORD


def test_pull_a_hubspot_list_into_a_new_table(crm_env, app, live_server, browser_page, run_jobs):  # noqa: F811
    from morket.extensions import db

    httpx.post(f"{crm_env}/_sandbox/hubspot/reset").raise_for_status()
    seeded = {"object": "contacts", "records": contacts(40), "list": "Webinar attendees"}
    made = httpx.post(f"{crm_env}/_sandbox/hubspot/seed", json=seeded).json()
    with app.app_context():
        committed_owner(email="pia@example.com", name="Pia", slug="pia-co", workspace_name="Pia Co", password=PASSWORD)
        db.session.commit()
    page, base = browser_page, live_server
    page.goto(f"{base}/login")
    page.fill("#email", "pia@example.com")
    page.fill("#password", PASSWORD)
    page.click("form button[type=submit]")
    page.goto(f"{base}/w/pia-co/connections")
    page.locator("#crm-hubspot").get_by_role("button", name="Connect HubSpot").click()
    page.get_by_role("button", name="Allow").click()
    expect(page.locator("#toasts")).to_contain_text("Connected HubSpot")
    page.get_by_role("link", name="Import from HubSpot into a table").click()
    page.select_option("#pull-kind", "list")
    page.fill("#pull-list", made["list_id"])
    page.fill("#pull-fields", "email, firstname, lastname")
    page.fill("#pull-table-name", "Webinar attendees")
    page.select_option("#pull-on-delete", "remove")  # when a record leaves the list, its row goes too
    page.get_by_role("button", name="Preview first 10").click()
    preview = page.locator("[data-pull-preview]")
    expect(preview).to_contain_text("person0@example.com")
    expect(preview.locator("tbody tr")).to_have_count(10)
    problems = check_page(page, "crm-pull-preview", "1366x768")
    page.get_by_role("button", name="Start pull").click()
    expect(page.locator("[data-pull-status]")).to_be_visible()
    settings = app.config["MORKET"]  # the worker (this process) reaches the same sandboxes as the live server
    saved = {k: settings.get(k) for k in (*CLIENTS, "HUBSPOT_API_URL", "HUBSPOT_AUTH_URL")}
    settings.update({**CLIENTS, "HUBSPOT_API_URL": f"{crm_env}/hubspot", "HUBSPOT_AUTH_URL": f"{crm_env}/hubspot"})
    try:
        run_jobs()
    finally:
        settings.update(saved)
    expect(page.locator("[data-pull-status=done]")).to_contain_text("40 read", timeout=10_000)
    expect(page.locator("#toasts")).to_contain_text("Pull finished: 40 read, 40 new")
    expect(page.locator("#pull-sources")).to_contain_text("Webinar attendees")
    problems += check_page(page, "crm-pull-done", "1366x768")

    # Three members leave the list in HubSpot; "Pull again" removes their rows and says so.
    gone = made["ids"][:3]
    httpx.post(f"{crm_env}/_sandbox/hubspot/unlist", json={"list_id": made["list_id"], "ids": gone}).raise_for_status()
    page.get_by_role("button", name="Pull again").first.click()
    page.wait_for_load_state("load")
    settings.update({**CLIENTS, "HUBSPOT_API_URL": f"{crm_env}/hubspot", "HUBSPOT_AUTH_URL": f"{crm_env}/hubspot"})
    try:
        run_jobs()
    finally:
        settings.update(saved)
    expect(page.locator("[data-pull-status=done] [data-pull-removed]")).to_have_text("3 removed", timeout=10_000)
    expect(page.locator("#toasts")).to_contain_text("0 new, 0 updated, 3 removed")
    page.reload()
    page.wait_for_load_state("load")
    expect(page.locator("#pull-sources")).to_contain_text("3 removed")
    problems += check_page(page, "crm-pull-removed", "1366x768")
    page.get_by_role("link", name="Webinar attendees").first.click()
    expect(page.get_by_text("person39@example.com")).to_be_visible()
    expect(page.get_by_text("person0@example.com", exact=True)).to_have_count(0)
    assert problems == []
    assert page.problems == []
