"""The table page as a user sees it, in Chromium: the grid fills the window under one toolbar.

On a million-row table at 1366×768, 1920×1080 and 390×844: the page never scrolls (sideways or
down), only the grid does; the toolbar stays on one line; on desktop the grid takes at least 75 %
of the window's height; the row-number column shows 1000000 in full; axe-core finds nothing
serious. On a small table: the status bar sums a selection, a number formula's cells are numbers,
a failing formula says why in the cell, a formula follows an edited cell without a reload, and
Ctrl+Z works right after a reload without clicking the grid first.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from playwright.sync_api import expect
from sqlalchemy import create_engine, text

from tests.browser.conftest import browser_page, committed_owner, live_server  # noqa: F401 - the browser fixtures
from tests.support.axe import axe_path, severe_violations, skip_without_axe
from tests.support.tables import committed_table
from tests.tables.test_grid_browser import PASSWORD, _settle, big_table  # noqa: F401 - big_table is a fixture

SCREENSHOTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "screenshots"
SIZES = [(1366, 768), (1920, 1080), (390, 844)]

# What the page's layout looks like to a user, measured in the page.
LAYOUT = """(gridId) => {
  const doc = document.documentElement, grid = document.getElementById(gridId);
  const bar = document.querySelector('.grid-toolbar');
  const items = [...bar.children].filter((c) => c.offsetParent !== null && c.offsetWidth > 0);
  const tops = items.map((c) => c.getBoundingClientRect().top + c.offsetHeight / 2);
  return {
    pageScrollsSideways: doc.scrollWidth > doc.clientWidth,
    pageScrollsDown: doc.scrollHeight > doc.clientHeight,
    gridHeight: grid.getBoundingClientRect().height,
    gridScrolls: grid.scrollHeight > grid.clientHeight && getComputedStyle(grid).overflowY === 'auto',
    toolbarHeight: bar.getBoundingClientRect().height,
    toolbarLines: Math.max(...tops) - Math.min(...tops),
  };
}"""

LAST_ROW_NUMBER = """(g) => {
  const cell = [...g.querySelectorAll('.grid-row')].pop().querySelector('.grid-rownum');
  return {text: cell.textContent, clipped: cell.scrollWidth > cell.clientWidth};
}"""


def _login(page, base: str, email: str, password: str) -> None:
    page.goto(f"{base}/login")
    page.fill("#email", email)
    page.fill("#password", password)
    page.click("form button[type=submit]")
    expect(page).not_to_have_url(f"{base}/login")


@pytest.mark.browser
@pytest.mark.parametrize("big_table", [1_000_000], indirect=True)
def test_the_grid_fills_the_window_at_three_sizes(app, live_server, browser_page, big_table):  # noqa: F811
    page, base, info = browser_page, live_server, big_table
    n = info["n"]
    _login(page, base, "grid@example.com", PASSWORD)
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    grid_id = f"table-{info['table_id']}-grid"
    for width, height in SIZES:
        page.set_viewport_size({"width": width, "height": height})
        page.goto(f"{base}/w/{info['slug']}/tables/{info['table_id']}")
        grid = page.locator(f"#{grid_id}")
        expect(page.locator("[data-grid-count]")).to_have_text(f"{n:,} rows")
        _settle(page, grid)
        layout = page.evaluate(LAYOUT, grid_id)
        where = f"at {width}x{height}: {layout}"
        assert not layout["pageScrollsSideways"], where
        assert not layout["pageScrollsDown"], where
        assert layout["gridScrolls"], where
        assert layout["toolbarLines"] < 4 and layout["toolbarHeight"] <= 48, where
        if width > 400:  # the two desktop sizes
            assert layout["gridHeight"] >= 0.75 * height, where

        # Wheel over the grid: the grid scrolls, the page does not.
        box = grid.bounding_box()
        page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
        page.mouse.wheel(0, 32 * 20)
        page.wait_for_function("(g) => g.scrollTop > 0", arg=grid.element_handle())
        assert page.evaluate("[window.scrollX, window.scrollY]") == [0, 0], where

        # The last row's number shows all seven digits.
        grid.evaluate("(g) => { g.scrollTop = g.scrollHeight; }")
        _settle(page, grid, n - 20)
        last = grid.evaluate(LAST_ROW_NUMBER)
        assert last == {"text": str(n), "clipped": False}, where
        # ... and it is on screen, above the add-row line, not cut off by the grid's bottom edge.
        row = grid.locator(f".grid-row[data-pos='{n - 1}']")
        row_box, grid_box = row.bounding_box(), grid.bounding_box()
        assert row_box["y"] + row_box["height"] <= grid_box["y"] + grid_box["height"] - 32 + 1, where

        page.screenshot(path=str(SCREENSHOTS / f"grid-{width}x{height}.png"))
        # The table page's own part of the window: the app's shell around it is checked by its own tests.
        if axe_path() is not None:
            assert severe_violations(page, within="#main") == [], where
    assert page.problems == []
    if axe_path() is None:
        skip_without_axe()  # every layout check above ran; only the accessibility check could not


def _small_table(app) -> tuple[str, int]:
    """Commit a user, their workspace and a 3-row table: Company, Seats, Price, a number formula."""
    owner = {"email": "page@example.com", "name": "Page", "slug": "page-co", "workspace_name": "Page Co"}
    return committed_table(
        app,
        owner={**owner, "password": PASSWORD},
        name="Deals",
        columns=[
            {"name": "Company", "type": "text"},
            {"name": "Seats", "type": "number"},
            {"name": "Price", "type": "number", "config": {"decimals": 2}},
        ],
        rows=[
            {"Company": "Acme", "Seats": 5, "Price": "12.5"},
            {"Company": "Globex", "Seats": 0, "Price": "3"},
            {"Company": "Initech", "Seats": 1200, "Price": "1.25"},
        ],
        formulas=[("Per seat", "{Price} * 10 / {Seats}")],
    )


def _cell(page, row: int, column: int):
    return page.locator(f".grid-rows .grid-row[data-pos='{row}'] .grid-cell").nth(column)


@pytest.mark.browser
def test_status_bar_typed_formulas_and_undo_after_reload(app, database_url, live_server, browser_page, run_jobs):  # noqa: F811
    path, table_id = _small_table(app)
    run_jobs()
    page, base = browser_page, live_server
    try:
        _login(page, base, "page@example.com", PASSWORD)
        page.goto(f"{base}{path}")
        expect(_cell(page, 0, 0)).to_have_text("Acme")

        # Numbers keep their column's decimals; a number formula's cells are numbers, right-aligned.
        expect(_cell(page, 1, 2)).to_have_text("3.00")
        expect(_cell(page, 2, 2)).to_have_text("1.25")
        per_seat = _cell(page, 0, 3)
        expect(per_seat).to_have_text("25")
        assert per_seat.evaluate("(c) => getComputedStyle(c).textAlign") == "right"
        expect(_cell(page, 2, 3)).to_have_text("0.01041666666666666667")

        # A formula that fails says why in the cell itself, not only in its tooltip.
        failed = _cell(page, 1, 3)
        expect(failed).to_have_class(re.compile(r"\bis-error\b"))
        shown = failed.evaluate("(c) => getComputedStyle(c, '::before').content")
        assert "Division by zero" in shown

        # Select the Seats and Price cells of two rows: the status bar counts and sums them.
        _cell(page, 0, 1).click()
        page.keyboard.press("Shift+ArrowRight")
        page.keyboard.press("Shift+ArrowDown")
        expect(page.locator("[data-grid-selection]")).to_have_text("4 cells selected · Sum 20.5 · Average 5.13")

        # Edit Seats of Globex: its formula cell follows without a reload.
        _cell(page, 1, 1).click()
        page.keyboard.type("4")
        page.keyboard.press("Enter")
        expect(page.locator("[data-edit-status]")).to_have_text("Saved.")
        expect(_cell(page, 1, 3)).to_have_text("7.5")
        expect(_cell(page, 1, 3)).not_to_have_class(re.compile(r"\bis-error\b"))

        # Reload and press Ctrl+Z at once: the grid has the keyboard, and the edit is undone.
        page.reload()
        expect(_cell(page, 1, 1)).to_have_text("4")
        page.keyboard.press("Control+z")
        expect(page.locator("[data-edit-status]")).to_have_text("Undid the cell edit.")
        expect(_cell(page, 1, 1)).to_have_text("0")
        assert page.problems == []
    finally:
        engine = create_engine(database_url)
        with engine.begin() as conn:
            conn.execute(text(f"DROP TABLE IF EXISTS ut.t_{int(table_id)}"))
        engine.dispose()


@pytest.mark.browser
def test_toolbar_menus_header_sort_and_new_row(app, database_url, live_server, browser_page, run_jobs):  # noqa: F811
    path, table_id = _small_table(app)
    run_jobs()
    page, base = browser_page, live_server
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    try:
        _login(page, base, "page@example.com", PASSWORD)
        page.goto(f"{base}{path}")
        expect(_cell(page, 0, 0)).to_have_text("Acme")

        # Enrich is the toolbar's primary action and opens the enrichment setup without script.
        enrich = page.locator("#enrich-open")
        expect(enrich).to_have_class(re.compile(r"\bprimary\b"))
        assert enrich.get_attribute("href") == f"{path}/enrichment/new"

        # The "more" menu holds the table's other tools, inside the window.
        page.click("[data-chip=more] summary")
        menu = page.locator("[data-chip=more] .grid-pop-panel")
        for item in ("Find duplicates", "Bulk edit", "Import CSV", "Export CSV", "Enrichment runs"):
            expect(menu.get_by_text(item, exact=True)).to_be_visible()
        box = menu.bounding_box()
        assert box["x"] >= 0 and box["x"] + box["width"] <= page.viewport_size["width"]
        page.screenshot(path=str(SCREENSHOTS / "grid-more-menu.png"))
        page.keyboard.press("Escape")
        expect(menu).to_be_hidden()

        # The line under the last row adds a row at the end.
        page.get_by_role("button", name="+ New row").click()
        expect(page.locator("[data-edit-status]")).to_have_text("Added 1 row.")
        expect(page.locator("[data-grid-count]")).to_have_text("4 rows")
        expect(page.locator(".grid-rows .grid-row")).to_have_count(4)
        expect(_cell(page, 3, 0)).to_have_text("")

        # "Insert left" in the Seats header's menu adds a column just before Seats.
        seats = page.locator(".grid-col-header", has_text="Seats")
        seats.focus()
        page.keyboard.press("Enter")
        page.locator(".columns-menu").get_by_role("button", name="← Insert left").click()
        form = page.locator(".columns-popover .columns-form")
        expect(form.locator(".columns-heading")).to_have_text("Insert a column")
        form.locator("input[name=name]").fill("Region")
        form.get_by_role("button", name="Add column").click()
        headers = page.locator(".grid-col-header .col-name")
        expect(headers).to_have_text(["Company", "Region", "Seats", "Price", "Per seat"])
        page.wait_for_load_state("load")  # the page reloaded: its header menus work once its scripts ran

        # The Company header's menu sorts Z to A: the view is saved and the page shows its order.
        page.locator(".grid-col-header", has_text="Company").hover()
        page.locator(".grid-col-header", has_text="Company").locator(".col-menu-btn").click()
        page.locator(".columns-menu").get_by_role("button", name="Sort Z → A").click()
        expect(page.locator("[data-chip=sort] summary")).to_contain_text("Sorted by Company")
        expect(_cell(page, 0, 0)).to_have_text("Initech")
        expect(_cell(page, 1, 0)).to_have_text("Globex")
        page.click("[data-chip=sort] summary")
        company_id = page.locator("#s-col-1 option", has_text="Company").get_attribute("value")
        expect(page.locator("#s-col-1")).to_have_value(company_id)
        expect(page.locator("#s-dir-1")).to_have_value("desc")
        page.screenshot(path=str(SCREENSHOTS / "grid-sort-popover.png"))
        assert [p for p in page.problems if " 422 " not in f" {p} "] == []
    finally:
        engine = create_engine(database_url)
        with engine.begin() as conn:
            conn.execute(text(f"DROP TABLE IF EXISTS ut.t_{int(table_id)}"))
        engine.dispose()


@pytest.mark.browser
def test_a_new_table_fills_the_window_and_says_how_to_start(app, database_url, live_server, browser_page):  # noqa: F811
    from morket.extensions import db
    from morket.tables import service

    with app.app_context():
        workspace, user = committed_owner(
            email="new@example.com", name="New", slug="new-co", workspace_name="New Co", password=PASSWORD
        )
        table = service.create_table(workspace, user, "Fresh", columns=[{"name": "Name", "type": "text"}])
        db.session.commit()
        path, table_id = f"/w/{workspace.slug}/tables/{table.id}", table.id
    page, base = browser_page, live_server
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    try:
        _login(page, base, "new@example.com", PASSWORD)
        page.set_viewport_size({"width": 1366, "height": 768})
        page.goto(f"{base}{path}")
        expect(page.locator("[data-grid-count]")).to_have_text("0 rows")
        expect(page.locator(".grid-norows")).to_contain_text("No rows yet")
        layout = page.evaluate(LAYOUT, f"table-{table_id}-grid")
        assert layout["gridHeight"] >= 0.75 * 768 and not layout["pageScrollsDown"], layout
        page.screenshot(path=str(SCREENSHOTS / "grid-new-table.png"))
        if axe_path() is not None:
            assert severe_violations(page, within="#main") == []
        page.get_by_role("button", name="+ New row").click()
        expect(page.locator("[data-grid-count]")).to_have_text("1 row")
        expect(page.locator(".grid-norows")).to_be_hidden()
        assert page.problems == []
        if axe_path() is None:
            skip_without_axe()
    finally:
        engine = create_engine(database_url)
        with engine.begin() as conn:
            conn.execute(text(f"DROP TABLE IF EXISTS ut.t_{int(table_id)}"))
        engine.dispose()
