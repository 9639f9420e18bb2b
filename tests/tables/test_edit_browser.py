"""Editing the grid in Chromium: type + Enter saves, Ctrl-Z and Ctrl-Shift-Z, reload, paste a block, copy a range."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect
from sqlalchemy import create_engine, text

from tests.browser.conftest import browser_page, live_server  # noqa: F401 - the browser fixtures
from tests.support.tables import committed_table

PASSWORD = "grid editing passphrase"
# A 3-row table with a text and a number column (the grid editing tests' table)
LEADS = {
    "name": "Leads",
    "columns": [{"name": "Company", "type": "text"}, {"name": "Seats", "type": "number"}],
    "rows": [{"Company": "Acme", "Seats": 5}, {"Company": "Globex"}, {}],
}


def _committed_table(app) -> tuple[str, int]:
    """Commit a user, their workspace and a 3-row table with a text and a number column."""
    owner = {"email": "ed@example.com", "name": "Ed Editor", "slug": "edit-co", "workspace_name": "Edit Co"}
    return committed_table(app, owner={**owner, "password": PASSWORD}, **LEADS)


def _cell(page, row: int, column: int):
    return page.locator(f".grid-rows .grid-row[data-pos='{row}'] .grid-cell").nth(column)


@pytest.mark.browser
def test_edit_undo_redo_paste_and_copy_in_the_grid(app, database_url, live_server, browser_page):  # noqa: F811
    path, table_id = _committed_table(app)
    page, base = browser_page, live_server
    try:
        page.context.grant_permissions(["clipboard-read", "clipboard-write"], origin=base)
        page.goto(f"{base}/login")
        page.fill("#email", "ed@example.com")
        page.fill("#password", PASSWORD)
        page.click("form button[type=submit]")
        page.goto(f"{base}{path}")
        expect(_cell(page, 0, 0)).to_have_text("Acme")

        # Type over a cell, Enter saves it and moves down.
        _cell(page, 0, 0).click()
        page.keyboard.type("Initech")
        page.keyboard.press("Enter")
        expect(_cell(page, 0, 0)).to_have_text("Initech")
        expect(page.locator("[data-edit-status]")).to_have_text("Saved.")
        expect(_cell(page, 1, 0)).to_have_class(lambda_class("is-cursor"))

        # A bad number is refused with a clear message and the old value stays.
        _cell(page, 0, 1).click()
        page.keyboard.type("lots")
        page.keyboard.press("Enter")
        expect(page.locator("[data-edit-status]")).to_contain_text("Seats: ")
        expect(_cell(page, 0, 1)).to_have_class(lambda_class("is-error"))
        expect(_cell(page, 0, 1)).to_have_text("5")

        page.keyboard.press("Control+z")
        expect(page.locator("[data-edit-status]")).to_have_text("Undid the cell edit.")
        expect(_cell(page, 0, 0)).to_have_text("Acme")
        page.keyboard.press("Control+Shift+Z")
        expect(page.locator("[data-edit-status]")).to_have_text("Redid the cell edit.")
        expect(_cell(page, 0, 0)).to_have_text("Initech")
        page.reload()
        expect(_cell(page, 0, 0)).to_have_text("Initech")

        # Paste a 3 x 2 block at row 2: the third line adds a row.
        _cell(page, 1, 0).click()
        page.evaluate(
            """() => {
                const data = new DataTransfer();
                data.setData("text/plain", 'Hooli\\t12\\r\\n"Pied\\tPiper"\\t7\\r\\nWonka\\t1,200\\r\\n');
                document.activeElement.dispatchEvent(new ClipboardEvent("paste", {clipboardData: data, bubbles: true}));
            }"""
        )
        expect(page.locator("[data-edit-status]")).to_have_text("Pasted 6 cells and added 1 row.")
        expect(page.locator(".grid-rows .grid-row")).to_have_count(4)
        expect(_cell(page, 2, 0)).to_have_text("Pied\tPiper")
        expect(_cell(page, 3, 1)).to_have_text("1,200")

        # Select rows 1-2 of both columns with Shift+arrows, and copy them as TSV.
        _cell(page, 0, 0).click()
        page.keyboard.press("Shift+ArrowRight")
        page.keyboard.press("Shift+ArrowDown")
        expect(page.locator(".grid-cell.is-selected")).to_have_count(4)
        page.keyboard.press("Control+c")
        expect(page.locator("[data-edit-status]")).to_have_text("Copied 4 cells.")
        copied = page.evaluate("() => navigator.clipboard.readText()")
        assert copied == "Initech\t5\r\nHooli\t12\r\n"
        assert [p for p in page.problems if " 422 " not in f" {p} "] == []
    finally:
        engine = create_engine(database_url)
        with engine.begin() as conn:
            conn.execute(text(f"DROP TABLE IF EXISTS ut.t_{int(table_id)}"))
        engine.dispose()


def lambda_class(name: str):
    """Match a class attribute that contains ``name`` among others."""
    import re

    return re.compile(rf"(^|\s){re.escape(name)}(\s|$)")
