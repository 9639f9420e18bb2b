"""A number column's format set from its header menu, in Chromium: the cells and the status bar follow."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from playwright.sync_api import expect
from sqlalchemy import create_engine, text

from tests.browser.conftest import browser_page, committed_owner, live_server  # noqa: F401 - the browser fixtures
from tests.tables.test_grid_browser import PASSWORD

SCREENSHOTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "screenshots"


def _table(app) -> tuple[str, int]:
    from morket.extensions import db
    from morket.tables import service

    with app.app_context():
        workspace, user = committed_owner(
            email="format@example.com", name="Format", slug="format-co", workspace_name="Format Co", password=PASSWORD
        )
        table = service.create_table(
            workspace,
            user,
            "Pipeline",
            columns=[{"name": "Company", "type": "text"}, {"name": "Amount", "type": "number"}],
        )
        service.insert_rows(
            workspace,
            user,
            table,
            [
                {"Company": "Acme", "Amount": "1234.5"},
                {"Company": "Globex", "Amount": "20000"},
                {"Company": "Initech", "Amount": "3.1"},
            ],
        )
        db.session.commit()
        return f"/w/{workspace.slug}/tables/{table.id}", table.id


def _cell(page, row: int, column: int):
    return page.locator(f".grid-rows .grid-row[data-pos='{row}'] .grid-cell").nth(column)


@pytest.mark.browser
def test_format_from_the_header_menu_reformats_cells_and_the_status_bar(app, database_url, live_server, browser_page):  # noqa: F811
    path, table_id = _table(app)
    page, base = browser_page, live_server
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    try:
        page.goto(f"{base}/login")
        page.fill("#email", "format@example.com")
        page.fill("#password", PASSWORD)
        page.click("form button[type=submit]")
        expect(page).not_to_have_url(f"{base}/login")
        page.goto(f"{base}{path}")
        expect(_cell(page, 0, 1)).to_have_text("1,234.5")

        # The header menu by keyboard: Enter on the header, then "Format…".
        header = page.locator(".grid-col-header", has_text="Amount")
        header.focus()
        page.keyboard.press("Enter")
        page.get_by_role("link", name="Format…").click()
        form = page.locator("[data-format-form]")
        expect(form).to_be_visible()
        decimals = form.get_by_label("Decimals")
        expect(decimals).to_be_focused()
        decimals.select_option("2")
        expect(form.locator("[data-format-example]")).to_have_text("1,234.50")
        page.screenshot(path=str(SCREENSHOTS / "grid-number-format-popover.png"))
        form.get_by_label("Thousands separator (1,234)").uncheck()
        expect(form.locator("[data-format-example]")).to_have_text("1234.50")
        form.get_by_label("Thousands separator (1,234)").check()
        page.keyboard.press("Escape")  # Escape closes it and the header has the keyboard again
        expect(form).to_be_hidden()
        expect(header).to_be_focused()

        page.keyboard.press("Enter")
        page.get_by_role("link", name="Format…").click()
        form = page.locator("[data-format-form]")
        form.get_by_label("Decimals").select_option("2")
        form.get_by_role("button", name="Save format").click()

        # Saved: the cells show the format without a reload, right-aligned; a toast says so.
        expect(_cell(page, 0, 1)).to_have_text("1,234.50")
        expect(_cell(page, 1, 1)).to_have_text("20,000.00")
        expect(_cell(page, 2, 1)).to_have_text("3.10")
        assert _cell(page, 0, 1).evaluate("(c) => getComputedStyle(c).textAlign") == "right"
        expect(page.get_by_text("Amount now shows 1,234.50.")).to_be_visible()
        expect(form).to_be_hidden()
        # The editor starts from the stored number, not the shown text.
        assert _cell(page, 0, 1).get_attribute("data-raw") == "1234.5"

        # The status bar sums the selection in the column's format.
        _cell(page, 0, 1).click()
        page.keyboard.press("Shift+ArrowDown")
        expect(page.locator("[data-grid-selection]")).to_have_text(
            "2 cells selected · Sum 21,234.50 · Average 10,617.25"
        )
        page.screenshot(path=str(SCREENSHOTS / "grid-number-format.png"))

        # Undo brings the previous format back.
        page.keyboard.press("Control+z")
        expect(_cell(page, 0, 1)).to_have_text("1,234.5")
        expect(_cell(page, 2, 1)).to_have_text("3.1")
        assert not [p for p in page.problems if not re.search(r"favicon", str(p))]
    finally:
        engine = create_engine(database_url)
        with engine.begin() as conn:
            conn.execute(text(f"DROP TABLE IF EXISTS ut.t_{int(table_id)}"))
        engine.dispose()
