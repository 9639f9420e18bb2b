"""In a real browser, sandbox mode: the table's "more" menu -> Send to HubSpot, map, preview, push 1,000
rows, edit 10, preview (10 updates, 990 unchanged), send only the changes (10 updates, 0 new)."""

from __future__ import annotations

import httpx
from playwright.sync_api import expect

from tests.browser.conftest import browser_page, committed_owner, live_server  # noqa: F401 - the browser fixtures
from tests.browser.pagecheck import check_page
from tests.crm.conftest import CLIENTS
from tests.crm.push_support import COLUMNS, column, person
from tests.crm.test_browser import crm_env  # noqa: F401 - the CRM sandboxes for the live server
from tests.factories import PASSWORD

# The numbers: 1,000 enriched rows to create, then 10 edited rows to update.
ROWS = 1000
EDITED = 10
PREVIEW_WAIT = 30_000  # a preview reads 1,000 records back from the CRM sandbox; the machine is shared


def _preview(page) -> None:
    """Press Preview changes once the page's scripts are in, and wait for the CRM's answer (it reads 1,000 records)."""
    page.wait_for_load_state("load")
    with page.expect_response(lambda r: r.url.endswith("/preview"), timeout=PREVIEW_WAIT) as answer:
        page.get_by_role("button", name="Preview changes").click()
    assert answer.value.status == 200, (answer.value.status, answer.value.text()[:500])


def _push(app, sandbox: str, run_jobs):
    """Work the queued push in this process, as a worker would, against the same sandboxes."""
    settings = app.config["MORKET"]
    saved = {k: settings.get(k) for k in (*CLIENTS, "HUBSPOT_API_URL", "HUBSPOT_AUTH_URL", "SALESFORCE_LOGIN_URL")}
    settings.update({**CLIENTS, "HUBSPOT_API_URL": f"{sandbox}/hubspot", "HUBSPOT_AUTH_URL": f"{sandbox}/hubspot",
                     "SALESFORCE_LOGIN_URL": f"{sandbox}/salesforce"})  # fmt: skip
    try:
        for _ in range(10):
            if not run_jobs():
                break
    finally:
        settings.update(saved)


def test_send_a_table_to_hubspot_from_its_more_menu(crm_env, app, live_server, browser_page, run_jobs):  # noqa: F811
    from morket.extensions import db
    from morket.tables import rows as table_rows
    from morket.tables import service as tables

    httpx.post(f"{crm_env}/_sandbox/hubspot/reset").raise_for_status()
    with app.app_context():
        workspace, owner = committed_owner(
            email="noa@example.com", name="Noa", slug="noa-co", workspace_name="Noa Co", password=PASSWORD
        )
        db.session.flush()
        table = tables.create_table(workspace, owner, "Leads", columns=COLUMNS)
        table_rows.insert_rows(workspace, owner, table, [person(i) for i in range(ROWS)])
        table_id, title_id = table.id, column(table, "Job title")
        db.session.commit()
    page, base = browser_page, live_server
    table_url = f"{base}/w/noa-co/tables/{table_id}"
    page.goto(f"{base}/login")
    page.fill("#email", "noa@example.com")
    page.fill("#password", PASSWORD)
    page.click("form button[type=submit]")

    # Not connected yet: the menu leads to Connections instead of a dead end.
    page.goto(table_url)
    page.locator(".grid-more > summary").click()
    expect(page.get_by_role("link", name="Send to HubSpot: connect it first")).to_be_visible()
    page.get_by_role("link", name="Send to HubSpot: connect it first").click()
    expect(page).to_have_url(f"{base}/w/noa-co/connections")
    page.locator("#crm-hubspot").get_by_role("button", name="Connect HubSpot").click()
    page.get_by_role("button", name="Allow").click()
    expect(page.locator("#toasts")).to_contain_text("Connected HubSpot")

    page.goto(table_url)
    page.locator(".grid-more > summary").click()
    page.get_by_role("link", name="Send to HubSpot", exact=True).click()
    expect(page.get_by_role("heading", name="Send “Leads” to HubSpot")).to_be_visible()
    # Five columns: Email is the key, four more are sent.
    page.select_option("#crm-key-field", "email")
    page.select_option("#crm-key-column", label="Email")
    for field, label in (("firstname", "First name"), ("lastname", "Last name"), ("company", "Company"),
                         ("jobtitle", "Job title")):  # fmt: skip
        page.select_option(f"#map-{field}", label=f"{label} (text)")
    problems = check_page(page, "crm-push-mapping", "1366x768")
    page.get_by_role("button", name="Save mapping").click()
    expect(page.locator("#toasts")).to_contain_text("Mapping saved")

    _preview(page)
    preview = page.locator("[data-preview]")
    expect(preview.locator("[data-create]")).to_have_text(f"{ROWS:,}", timeout=PREVIEW_WAIT)
    expect(preview.locator("[data-update]")).to_have_text("0")
    problems += check_page(page, "crm-push-preview", "1366x768")
    page.set_viewport_size({"width": 390, "height": 844})
    problems += check_page(page, "crm-push-preview", "390x844")
    page.set_viewport_size({"width": 1366, "height": 768})

    page.get_by_role("button", name="Send to HubSpot").click()
    expect(page.locator("#toasts")).to_contain_text(f"Push started: {ROWS:,} rows")
    _push(app, crm_env, run_jobs)
    first = page.locator(".crm-push-run").first
    expect(first).to_have_attribute("data-status", "completed", timeout=15_000)
    expect(first.locator("[data-created]")).to_have_text(f"{ROWS:,}")
    problems += check_page(page, "crm-push-done", "1366x768")
    state = httpx.get(f"{crm_env}/_sandbox/hubspot/state").json()
    assert state["records"]["contacts"] == ROWS

    # The record ids are in the grid's new "HubSpot ID" column.
    page.goto(table_url)
    header = page.locator(".grid-col-header", has_text="HubSpot ID")
    expect(header).to_be_visible()
    id_col = header.get_attribute("data-col-id")
    first_ids = page.locator(f'.grid-rows .grid-cell[data-col-id="{id_col}"]')
    expect(first_ids.first).not_to_have_attribute("data-raw", "")
    assert all(v for v in first_ids.evaluate_all("cells => cells.slice(0, 20).map(c => c.dataset.raw)"))

    # Edit ten rows, preview: 10 updates, the rest unchanged; push again: 10 updates, nothing new.
    with app.app_context():
        from morket.accounts.models import User
        from morket.tables import storage
        from morket.tables.models import Table
        from morket.workspaces.models import Workspace

        workspace = db.session.query(Workspace).filter_by(slug="noa-co").one()
        owner = db.session.query(User).filter_by(email="noa@example.com").one()
        table = db.session.get(Table, table_id)
        store = storage.storage_for(table)
        query = store.rows.select().with_only_columns(store.rows.c.id).order_by(store.rows.c.id).limit(EDITED)
        for (rid,) in db.session.execute(query):
            table_rows.update_cell(workspace, owner, table, rid, title_id, "Chief Revenue Officer")
        db.session.commit()
    page.goto(table_url)
    page.locator(".grid-more > summary").click()
    page.get_by_role("link", name="Send to HubSpot", exact=True).click()
    _preview(page)
    expect(preview.locator("[data-update]")).to_have_text(str(EDITED), timeout=PREVIEW_WAIT)
    expect(preview.locator("[data-create]")).to_have_text("0")
    expect(preview.locator("[data-unchanged]")).to_have_text(f"{ROWS - EDITED:,}")
    expect(page.locator("#crm-differences")).to_contain_text("Chief Revenue Officer")
    problems += check_page(page, "crm-push-changes", "1366x768")
    page.get_by_role("button", name=f"Send only the {EDITED} changes").click()
    expect(page.locator("#toasts")).to_contain_text(f"Push started: {EDITED} rows (only the changes)")
    _push(app, crm_env, run_jobs)
    second = page.locator(".crm-push-run").first
    expect(second).to_have_attribute("data-status", "completed", timeout=15_000)
    expect(second.locator("[data-created]")).to_have_text("0")
    expect(second.locator("[data-updated]")).to_have_text(str(EDITED))
    assert httpx.get(f"{crm_env}/_sandbox/hubspot/state").json()["records"]["contacts"] == ROWS
    assert problems == []
    assert page.problems == []


def test_send_a_table_to_salesforce_by_external_id(crm_env, app, live_server, browser_page, run_jobs):  # noqa: F811
    """Leads by the Morket row id as the external id Morket_Id__c: 1,000 created, then 10 edited sent as updates."""
    from morket.extensions import db
    from morket.tables import rows as table_rows
    from morket.tables import service as tables

    httpx.post(f"{crm_env}/_sandbox/salesforce/reset").raise_for_status()
    with app.app_context():
        workspace, owner = committed_owner(
            email="ira@example.com", name="Ira", slug="ira-co", workspace_name="Ira Co", password=PASSWORD
        )
        db.session.flush()
        table = tables.create_table(workspace, owner, "Leads", columns=COLUMNS)
        table_rows.insert_rows(workspace, owner, table, [person(i) for i in range(ROWS)])
        table_id, title_id = table.id, column(table, "Job title")
        db.session.commit()
    page, base = browser_page, live_server
    table_url = f"{base}/w/ira-co/tables/{table_id}"
    page.goto(f"{base}/login")
    page.fill("#email", "ira@example.com")
    page.fill("#password", PASSWORD)
    page.click("form button[type=submit]")
    page.goto(f"{base}/w/ira-co/connections")
    page.locator("#crm-salesforce").get_by_role("button", name="Connect Salesforce").click()
    page.get_by_role("button", name="Allow").click()
    expect(page.locator("#toasts")).to_contain_text("Connected Salesforce")

    page.goto(table_url)
    page.wait_for_load_state("load")
    page.locator(".grid-more > summary").click(timeout=30_000)  # a 1,000-row grid on a loaded machine
    page.get_by_role("link", name="Send to Salesforce", exact=True).click()
    expect(page.get_by_role("heading", name="Send “Leads” to Salesforce")).to_be_visible()
    page.select_option("#crm-object", "Lead")
    page.get_by_role("button", name="Show fields").click()
    page.wait_for_load_state("load")
    page.select_option("#crm-key-field", "Morket_Id__c")
    page.select_option("#crm-key-column", label="Morket row id")
    for field, label in (("FirstName", "First name (text)"), ("LastName", "Last name (text)"),
                         ("Company", "Company (text)"), ("Email", "Email (email)"),
                         ("Title", "Job title (text)")):  # fmt: skip
        page.select_option(f"#map-{field}", label=label)
    page.get_by_role("button", name="Save mapping").click()
    expect(page.locator("#toasts")).to_contain_text("Mapping saved")

    preview = page.locator("[data-preview]")
    _preview(page)
    expect(preview.locator("[data-create]")).to_have_text(f"{ROWS:,}", timeout=PREVIEW_WAIT)
    page.get_by_role("button", name="Send to Salesforce").click()
    expect(page.locator("#toasts")).to_contain_text(f"Push started: {ROWS:,} rows")
    _push(app, crm_env, run_jobs)
    first = page.locator(".crm-push-run").first
    expect(first).to_have_attribute("data-status", "completed", timeout=15_000)
    expect(first.locator("[data-created]")).to_have_text(f"{ROWS:,}")
    problems = check_page(page, "crm-push-salesforce-done", "1366x768")
    assert httpx.get(f"{crm_env}/_sandbox/salesforce/state").json()["records"]["Lead"] == ROWS

    with app.app_context():
        from morket.accounts.models import User
        from morket.tables import storage
        from morket.tables.models import Table
        from morket.workspaces.models import Workspace

        workspace = db.session.query(Workspace).filter_by(slug="ira-co").one()
        owner = db.session.query(User).filter_by(email="ira@example.com").one()
        table = db.session.get(Table, table_id)
        store = storage.storage_for(table)
        query = store.rows.select().with_only_columns(store.rows.c.id).order_by(store.rows.c.id.desc()).limit(EDITED)
        for (rid,) in db.session.execute(query):
            table_rows.update_cell(workspace, owner, table, rid, title_id, "Head of RevOps")
        db.session.commit()
    page.reload()
    page.wait_for_load_state("load")
    _preview(page)
    expect(preview.locator("[data-update]")).to_have_text(str(EDITED), timeout=PREVIEW_WAIT)
    expect(preview.locator("[data-unchanged]")).to_have_text(f"{ROWS - EDITED:,}")
    page.get_by_role("button", name=f"Send only the {EDITED} changes").click()
    _push(app, crm_env, run_jobs)
    second = page.locator(".crm-push-run").first
    expect(second).to_have_attribute("data-status", "completed", timeout=15_000)
    expect(second.locator("[data-created]")).to_have_text("0")
    expect(second.locator("[data-updated]")).to_have_text(str(EDITED))
    assert httpx.get(f"{crm_env}/_sandbox/salesforce/state").json()["records"]["Lead"] == ROWS

    # The breadcrumb leads back to the table, where the record ids are.
    page.get_by_role("navigation", name="Breadcrumb").get_by_role("link", name="Leads").click()
    expect(page).to_have_url(table_url)
    header = page.locator(".grid-col-header", has_text="Salesforce ID")
    expect(header).to_be_visible()
    assert problems == []
    assert page.problems == []
