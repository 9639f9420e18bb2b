"""Feedback on the table page, in Chromium: toasts for column changes (Undo on a deleted column), the
status bar after undoing a format, and the grid's empty states for filters and searches that match nothing."""

from __future__ import annotations

from pathlib import Path

import pytest
from playwright.sync_api import expect
from sqlalchemy import create_engine, text

from tests.browser.conftest import browser_page, committed_owner, live_server  # noqa: F401 - the browser fixtures
from tests.tables.test_grid_browser import PASSWORD

SCREENSHOTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "screenshots"


def _table(app) -> dict:
    from morket.extensions import db
    from morket.tables import service

    with app.app_context():
        workspace, user = committed_owner(
            email="feedback@example.com",
            name="Feedback",
            slug="feedback-co",
            workspace_name="Feedback Co",
            password=PASSWORD,
        )
        table = service.create_table(
            workspace,
            user,
            "Pipeline",
            columns=[
                {"name": "Company", "type": "text"},
                {"name": "Amount", "type": "number"},
                {"name": "Region", "type": "text"},
            ],
        )
        service.insert_rows(
            workspace,
            user,
            table,
            [{"Company": "Acme", "Amount": "1234.5", "Region": "EU"}, {"Company": "Globex", "Amount": "20000"}],
        )
        company = table.live_columns[0]
        empty_view = service.create_view(
            workspace,
            user,
            table,
            "Nobody",
            filters={"op": "and", "conditions": [{"column_id": company.id, "operator": "contains", "value": "zzz"}]},
        )
        db.session.commit()
        return {"path": f"/w/{workspace.slug}/tables/{table.id}", "table_id": table.id, "empty_view": empty_view.id}


def _cell(page, row: int, column: int):
    return page.locator(f".grid-rows .grid-row[data-pos='{row}'] .grid-cell").nth(column)


def _login(page, base):
    page.goto(f"{base}/login")
    page.fill("#email", "feedback@example.com")
    page.fill("#password", PASSWORD)
    page.click("form button[type=submit]")
    expect(page).not_to_have_url(f"{base}/login")


@pytest.mark.browser
def test_column_changes_toast_and_delete_offers_undo(app, database_url, live_server, browser_page):  # noqa: F811
    info = _table(app)
    page, base = browser_page, live_server
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    try:
        _login(page, base)
        page.goto(f"{base}{info['path']}")
        grid = page.locator(f"#table-{info['table_id']}-grid")
        expect(grid.locator(".grid-row")).to_have_count(2)
        menu = page.locator(".columns-popover .columns-menu")

        # Rename from the header menu: the page reloads and a toast says what changed.
        grid.locator(".grid-col-header").nth(0).click(button="right")
        menu.locator("input[name=name]").fill("Account")
        menu.get_by_role("button", name="Rename").click()
        expect(page.locator("#toasts")).to_contain_text("Renamed “Company” to “Account”.")
        expect(grid.locator(".grid-col-header").nth(0)).to_contain_text("Account")
        expect(grid.locator(".grid-col-header .col-menu-btn").first).to_be_attached()

        # Delete a column: its toast offers Undo, which brings the column back.
        page.on("dialog", lambda dialog: dialog.accept())
        grid.locator(".grid-col-header", has_text="Region").click(button="right")
        menu.get_by_role("button", name="Delete column").click()
        toast = page.locator("#toasts .toast", has_text="Deleted “Region”.")
        expect(toast).to_be_visible()
        expect(grid.locator(".grid-col-header", has_text="Region")).to_have_count(0)
        page.screenshot(path=str(SCREENSHOTS / "grid-column-deleted-toast.png"))
        toast.get_by_role("button", name="Undo").click()
        expect(page.locator("#toasts")).to_contain_text("Undid the column change.")
        expect(grid.locator(".grid-col-header", has_text="Region")).to_have_count(1)
        expect(grid.locator(".grid-row").first).to_contain_text("EU")
        assert [p for p in page.problems if "favicon" not in str(p)] == []
    finally:
        _drop(database_url, info["table_id"])


@pytest.mark.browser
def test_the_status_bar_follows_an_undone_format(app, database_url, live_server, browser_page):  # noqa: F811
    info = _table(app)
    page, base = browser_page, live_server
    try:
        _login(page, base)
        page.goto(f"{base}{info['path']}")
        expect(_cell(page, 0, 1)).to_have_text("1,234.5")
        header = page.locator(".grid-col-header", has_text="Amount")
        header.focus()
        page.keyboard.press("Enter")
        page.get_by_role("link", name="Format…").click()
        form = page.locator("[data-format-form]")
        form.get_by_label("Decimals").select_option("2")
        form.get_by_label("Style").select_option("currency")
        form.get_by_role("button", name="Save format").click()
        expect(_cell(page, 0, 1)).to_have_text("1,234.50 USD")

        selection = page.locator("[data-grid-selection]")
        _cell(page, 0, 1).click()
        page.keyboard.press("Shift+ArrowDown")
        expect(selection).to_have_text("2 cells selected · Sum 21,234.50 USD · Average 10,617.25 USD")

        # Undo: the cells and the status bar's sums are back in the old format, without a reload.
        page.keyboard.press("Control+z")
        expect(_cell(page, 0, 1)).to_have_text("1,234.5")
        _cell(page, 0, 1).click()
        page.keyboard.press("Shift+ArrowDown")
        expect(selection).to_have_text("2 cells selected · Sum 21,234.5 · Average 10,617.25")
        # Redo: the currency format again.
        page.keyboard.press("Control+Shift+z")
        expect(_cell(page, 0, 1)).to_have_text("1,234.50 USD")
        _cell(page, 0, 1).click()
        page.keyboard.press("Shift+ArrowDown")
        expect(selection).to_have_text("2 cells selected · Sum 21,234.50 USD · Average 10,617.25 USD")
        assert [p for p in page.problems if "favicon" not in str(p)] == []
    finally:
        _drop(database_url, info["table_id"])


@pytest.mark.browser
def test_filters_and_searches_that_match_nothing_say_so_and_clear(app, database_url, live_server, browser_page):  # noqa: F811
    info = _table(app)
    page, base = browser_page, live_server
    try:
        _login(page, base)
        page.goto(f"{base}{info['path']}?view={info['empty_view']}")
        empty = page.locator(".grid-nofilter")
        expect(empty).to_be_visible()
        expect(empty).to_contain_text("No rows match these filters.")
        expect(page.get_by_text("No rows yet")).to_have_count(0)
        page.screenshot(path=str(SCREENSHOTS / "grid-no-filter-match.png"))
        empty.get_by_role("button", name="Clear filters").click()
        expect(page.locator("#toasts")).to_contain_text("Cleared the filters of “Nobody”.")
        grid = page.locator(f"#table-{info['table_id']}-grid")
        expect(grid.locator(".grid-row")).to_have_count(2)
        expect(page.locator(".grid-nofilter")).to_have_count(0)

        page.fill(f"#grid-search-{info['table_id']}", "no such company")
        note = grid.locator(".grid-nomatch")
        expect(note).to_contain_text("No rows match this search.")
        expect(note).to_contain_text("“no such company”")
        expect(note).to_be_visible()
        page.screenshot(path=str(SCREENSHOTS / "grid-no-search-match.png"))
        note.get_by_role("button", name="Clear search").click()
        expect(grid.locator(".grid-row")).to_have_count(2)
        expect(page.locator(f"#grid-search-{info['table_id']}")).to_have_value("")
        expect(note).to_have_count(0)
        assert [p for p in page.problems if "favicon" not in str(p)] == []
    finally:
        _drop(database_url, info["table_id"])


def _drop(database_url: str, table_id: int) -> None:
    engine = create_engine(database_url)
    with engine.begin() as conn:
        conn.execute(text(f"DROP TABLE IF EXISTS ut.t_{int(table_id)}"))
    engine.dispose()


_CLOSE_BOX = """() => {
  const b = document.querySelector('#enrich-drawer .enrich-close'), d = document.getElementById('enrich-drawer');
  const r = b.getBoundingClientRect(), dr = d.getBoundingClientRect();
  const hit = document.elementFromPoint(r.left + r.width - 3, r.top + r.height / 2);
  return {left: r.left, right: r.right, top: r.top, bottom: r.bottom, drawerLeft: dr.left, drawerRight: dr.right,
          width: document.documentElement.clientWidth, inner: window.innerWidth, height: window.innerHeight,
          scrollWidth: document.documentElement.scrollWidth, drawerScroll: d.scrollWidth - d.clientWidth,
          hitsButton: hit === b || b.contains(hit)};
}"""


@pytest.mark.browser
def test_the_enrichment_drawer_fits_a_phone_with_its_close_button_in_view(app, database_url, live_server, browser_page):  # noqa: F811
    info = _table(app)
    page, base = browser_page, live_server
    try:
        _login(page, base)
        page.set_viewport_size({"width": 390, "height": 844})
        page.goto(f"{base}{info['path']}")
        expect(page.locator(f"#table-{info['table_id']}-grid .grid-row")).to_have_count(2)
        page.locator("#enrich-open").click()
        expect(page.locator("#enrich-drawer [data-card]").first).to_be_visible()
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SCREENSHOTS / "enrich-drawer-phone-390x844.png"))
        box = page.evaluate(_CLOSE_BOX)
        # Full width, nothing sideways, and the close button wholly inside the viewport (its right edge
        # is what the pointer reaches, not a scrollbar or the drawer's clipped edge).
        assert box["drawerLeft"] <= 1 and box["drawerRight"] <= box["width"] + 1, box
        assert box["scrollWidth"] <= box["width"] + 1 and box["drawerScroll"] <= 1, box
        assert box["left"] >= 0 and box["right"] <= box["width"] - 4 and box["top"] >= 0, box
        assert box["hitsButton"], box
        # Scrolled down the catalogue, the close button stays in view.
        page.evaluate("document.getElementById('enrich-drawer').scrollTop = 600")
        box = page.evaluate(_CLOSE_BOX)
        assert box["top"] >= 0 and box["bottom"] <= box["height"] and box["hitsButton"], box
        page.locator("#enrich-drawer .enrich-close").click()
        expect(page.locator("#enrich-drawer")).to_be_hidden()
        assert [p for p in page.problems if "favicon" not in str(p)] == []
    finally:
        _drop(database_url, info["table_id"])
