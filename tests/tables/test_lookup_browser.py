"""A lookup column in Chromium: added from the '+' header with a preview, then kept current without a reload."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from tests.browser.conftest import browser_page, committed_owner, live_server  # noqa: F401 - the browser fixtures
from tests.browser.pagecheck import axe_violations, screenshot

PASSWORD = "lookup browser passphrase"


def _committed_tables(app) -> dict:
    """Commit an owner, "Companies" (Domain, Name) and "People" (Website) in one workspace."""
    from morket.extensions import db
    from morket.tables import service

    with app.app_context():
        workspace, user = committed_owner(
            email="lookups@example.com", name="Lu Kup", slug="lookup-co", workspace_name="Lookup Co", password=PASSWORD
        )
        companies = service.create_table(
            workspace,
            user,
            "Companies",
            columns=[{"name": "Domain", "type": "domain"}, {"name": "Name", "type": "text"}],
        )
        service.insert_rows(
            workspace,
            user,
            companies,
            [{"Domain": "acme.com", "Name": "Acme"}, {"Domain": "globex.com", "Name": "Globex"}],
        )
        people = service.create_table(workspace, user, "People", columns=[{"name": "Website", "type": "url"}])
        service.insert_rows(
            workspace, user, people, [{"Website": "https://www.acme.com/team"}, {"Website": "initech.com"}]
        )
        db.session.commit()
        rows = service.read_window(workspace, user, companies, None, 0, 10)
        return {
            "workspace_id": workspace.id,
            "path": f"/w/{workspace.slug}/tables/{people.id}",
            "companies": companies.id,
            "globex_row": rows[1].id,
            "name_column": next(c.id for c in companies.live_columns if c.name == "Name"),
        }


def _cell(page, row: int, column: int):
    return page.locator(f".grid-rows .grid-row[data-pos='{row}'] .grid-cell").nth(column)


@pytest.mark.browser
def test_add_a_lookup_and_see_it_follow_edits_without_a_reload(app, live_server, browser_page):  # noqa: F811
    from morket.extensions import db
    from morket.tables import service
    from morket.workspaces.models import Workspace

    info = _committed_tables(app)
    page, base = browser_page, live_server
    page.set_viewport_size({"width": 1366, "height": 768})
    page.goto(f"{base}/login")
    page.fill("#email", "lookups@example.com")
    page.fill("#password", PASSWORD)
    page.click("form button[type=submit]")
    page.goto(f"{base}{info['path']}")
    expect(_cell(page, 0, 0)).to_have_text("https://www.acme.com/team")

    # "+" → type Lookup: the settings appear with the other table chosen and a preview of the first rows.
    page.locator(".col-add-btn").click()
    form = page.locator(".columns-popover .columns-form")
    form.locator("input[name=name]").fill("Company")
    form.locator("select[name=type]").select_option("lookup")
    fields = form.locator(".columns-for-lookup")
    expect(fields).to_be_visible()
    expect(fields.locator("select[name=source_table_id]")).to_have_value(str(info["companies"]))
    fields.locator("select[name=field_column_id]").select_option(label="Name")
    preview = fields.locator(".lookup-preview")
    expect(preview.locator("tbody tr").first).to_contain_text("Acme")
    expect(preview.locator("tbody tr").nth(1)).to_contain_text("no match")
    assert axe_violations(page) == []
    screenshot(page, "lookup-add-form", "1366x768")
    form.get_by_role("button", name="Add column").click()

    header = page.locator(".grid-col-header", has_text="Company")
    expect(header).to_be_visible()
    expect(_cell(page, 0, 1)).to_have_text("Acme")
    expect(_cell(page, 1, 1)).to_have_text("")

    # Someone renames Globex through the API (another session): nothing to see yet, no row reads it.
    with app.app_context():
        workspace = db.session.get(Workspace, info["workspace_id"])
        companies = service.get_table_or_404(workspace, info["companies"], lock="share")
        service.update_cell(workspace, None, companies, info["globex_row"], info["name_column"], "Globex Corp")
        db.session.commit()

    # Editing this table's key in the grid refreshes the lookup cell in place, without a reload.
    page.evaluate("() => { window.__noReload = true; }")
    _cell(page, 1, 0).click()
    page.keyboard.type("http://globex.com/about")
    page.keyboard.press("Enter")
    expect(_cell(page, 1, 1)).to_have_text("Globex Corp")
    assert page.evaluate("() => window.__noReload === true")
    # The lookup's cells cannot be typed over.
    _cell(page, 0, 1).click()
    page.keyboard.type("typed")
    page.keyboard.press("Enter")
    expect(_cell(page, 0, 1)).to_have_text("Acme")
    screenshot(page, "lookup-grid", "1366x768")

    # The header menu shows the lookup's settings.
    header.click(button="right")
    menu = page.locator(".columns-popover .columns-menu")
    expect(menu.get_by_role("button", name="Save lookup")).to_be_visible()
    expect(menu.locator("select[name=field_column_id]")).to_have_value(str(info["name_column"]))
