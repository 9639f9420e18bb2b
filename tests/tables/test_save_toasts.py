"""Grid saves say so in a toast, in Chromium: one toast per grid that updates in place ("Saved",
then "Saved 3 cells" for a paste) rather than stacking, errors that name the reason and stay, and
row, fill and undo changes in the same toast."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect
from sqlalchemy import create_engine, text

from tests.browser.conftest import browser_page, live_server  # noqa: F401 - the browser fixtures
from tests.browser.pagecheck import screenshot
from tests.support.tables import committed_table
from tests.tables.test_edit_browser import LEADS, PASSWORD, _cell


def _committed_table(app) -> tuple[str, int]:
    owner = {"email": "toast@example.com", "name": "Toni", "slug": "toast-co", "workspace_name": "Toast Co"}
    return committed_table(app, owner={**owner, "password": PASSWORD}, **LEADS)


PASTE = """(text) => {
    const data = new DataTransfer();
    data.setData("text/plain", text);
    document.activeElement.dispatchEvent(new ClipboardEvent("paste", {clipboardData: data, bubbles: true}));
}"""


@pytest.mark.browser
def test_saves_in_the_grid_show_one_toast_that_updates_and_errors_that_say_why(
    app,
    database_url,
    live_server,  # noqa: F811
    browser_page,  # noqa: F811
):
    path, table_id = _committed_table(app)
    page, base = browser_page, live_server
    toasts = page.locator("#toasts [data-toast-key]")
    try:
        page.goto(f"{base}/login")
        page.fill("#email", "toast@example.com")
        page.fill("#password", PASSWORD)
        page.click("form button[type=submit]")
        page.goto(f"{base}{path}")
        expect(_cell(page, 0, 0)).to_have_text("Acme")
        expect(page.locator("#toasts")).to_have_attribute("aria-live", "polite")

        # One cell: "Saved".
        _cell(page, 0, 0).click()
        page.keyboard.type("Initech")
        page.keyboard.press("Enter")
        expect(toasts).to_have_count(1)
        expect(toasts.first.locator(".toast-text")).to_have_text("Saved")
        expect(toasts.first).to_have_attribute("role", "status")

        # Paste three cells: the same toast now says "Saved 3 cells" (no second toast).
        _cell(page, 0, 0).click()
        page.evaluate(PASTE, "Hooli\r\nPied Piper\r\nWonka\r\n")
        expect(_cell(page, 2, 0)).to_have_text("Wonka")
        expect(toasts).to_have_count(1)
        expect(toasts.first.locator(".toast-text")).to_have_text("Saved 3 cells")
        screenshot(page, "grid-save-toast", "1280x860")

        # A rejected value: an error toast that names the reason, kept until dismissed.
        _cell(page, 0, 1).click()
        page.keyboard.type("lots")
        page.keyboard.press("Enter")
        error = page.locator("#toasts .toast-error[data-toast-key]")
        expect(error).to_have_count(1)
        expect(error).to_have_attribute("role", "alert")
        expect(error.locator(".toast-text")).to_contain_text("Not saved: Seats: ")
        expect(error.locator(".toast-text")).to_contain_text("number")
        expect(toasts).to_have_count(1)  # the error took the save toast's place
        screenshot(page, "grid-error-toast", "1280x860")

        # Row add, undo and redo use the same toast; the error gives way to the next success.
        page.get_by_role("button", name="+ New row").click()
        expect(toasts.locator(".toast-text")).to_have_text("Added 1 row.")
        expect(page.locator("#toasts .toast-error")).to_have_count(0)
        page.locator(f"#table-{table_id}-grid .grid-cell").first.click()
        page.keyboard.press("Control+z")
        expect(toasts.locator(".toast-text")).to_have_text("Undid the added rows.")
        expect(toasts).to_have_count(1)
        assert [p for p in page.problems if " 422 " not in f" {p} "] == []
    finally:
        engine = create_engine(database_url)
        with engine.begin() as conn:
            conn.execute(text(f"DROP TABLE IF EXISTS ut.t_{int(table_id)}"))
        engine.dispose()
