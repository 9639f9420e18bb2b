"""The Tables issue's "done means", end to end in Chromium on a million rows.

Open the grid, drag the scrollbar to 90 %, see the right rows; edit a cell, undo, redo, reload and
find the value kept; sort through the view editor and see SQL's order. The DOM never holds more
than 300 rows, and the browser reports no problem.
"""
# ruff: noqa: S608 - the independent record is plain SQL over generated (integer) table names

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from tests.browser.conftest import browser_page, live_server  # noqa: F401 - the browser fixtures
from tests.tables.test_grid_browser import (  # noqa: F401 - big_table is a fixture
    MAX_ROWS_IN_DOM,
    PASSWORD,
    _expected,
    _scroll_to_fraction,
    _settle,
    big_table,
)

# Every page load records the most rows the grid ever held at once, whatever happened between checks.
WATCH_ROWS = """
window.__mostGridRows = 0;
new MutationObserver(() => {
  window.__mostGridRows = Math.max(window.__mostGridRows, document.querySelectorAll('.grid-row').length);
}).observe(document, {childList: true, subtree: true});
"""

WINDOW = """(g) => [...g.querySelectorAll('.grid-row')].map((r) => ({
  id: Number(r.dataset.rowId), pos: Number(r.dataset.pos),
  num: r.querySelector('.grid-rownum').textContent, company: r.querySelector('.grid-cell').textContent,
}))"""

NEW_VALUE = "Aaron Edited 90"


def _bounded(page) -> None:
    """At this step and every moment before it on this page, the grid held at most 300 rows."""
    assert page.evaluate("document.querySelectorAll('.grid-row').length") <= MAX_ROWS_IN_DOM
    assert page.evaluate("window.__mostGridRows") <= MAX_ROWS_IN_DOM


def _company_of(app, info, row_id: int) -> str | None:
    return _expected(app, f"SELECT {info['company']} FROM {info['rows']} WHERE id = :i", i=row_id)[0]


def _rows_at(app, info, order: str, start: int, count: int) -> tuple[list[int], list[str]]:
    """The ids and company values SQL puts at positions [start, start + count) in ``order``."""
    ids, companies = _expected(
        app,
        f"SELECT array_agg(id ORDER BY {order}), array_agg({info['company']} ORDER BY {order}) FROM "
        f"(SELECT * FROM {info['rows']} ORDER BY {order} OFFSET :s LIMIT :l) w",
        s=start,
        l=count,
    )
    return ids, companies


def _assert_window_matches(app, grid, info, order: str) -> list[dict]:
    """Every row in the DOM is the row SQL has at its position, numbered from 1."""
    rows = grid.evaluate(WINDOW)
    assert rows, "the grid shows no rows"
    start = rows[0]["pos"]
    assert [r["pos"] for r in rows] == list(range(start, start + len(rows)))
    assert [r["num"] for r in rows] == [f"{p + 1}" for p in range(start, start + len(rows))]
    ids, companies = _rows_at(app, info, order, start, len(rows))
    assert [r["id"] for r in rows] == ids
    assert [r["company"] for r in rows] == companies
    return rows


def _company_cell(grid, row_id: int):
    return grid.locator(f".grid-rows .grid-row[data-row-id='{row_id}'] .grid-cell").first


@pytest.mark.browser
@pytest.mark.parametrize("big_table", [1_000_000], indirect=True)
def test_done_means_on_a_million_rows(app, live_server, browser_page, big_table, run_jobs):  # noqa: F811
    page, base, info = browser_page, live_server, big_table
    n = info["n"]
    page.add_init_script(WATCH_ROWS)
    page.goto(f"{base}/login")
    page.fill("#email", "grid@example.com")
    page.fill("#password", PASSWORD)
    page.click("form button[type=submit]")
    expect(page).not_to_have_url(f"{base}/login")

    # Open the grid page.
    grid_url = f"{base}/w/{info['slug']}/tables/{info['table_id']}"
    page.goto(grid_url)
    grid = page.locator(f"#table-{info['table_id']}-grid")
    status = page.locator("[data-edit-status]")
    expect(page.locator("[data-grid-count]")).to_have_text(f"{n:,} rows")
    first = _settle(page, grid)
    assert (first["pos"], first["num"]) == (0, "1")
    _assert_window_matches(app, grid, info, "pos")
    _bounded(page)

    # Drag the scrollbar to about 90 %: the rows shown are the ones at those positions.
    aimed = _scroll_to_fraction(page, grid, 0.9)
    assert abs(aimed - 0.9 * n) < 0.01 * n
    shown = _settle(page, grid, aimed)
    rows = _assert_window_matches(app, grid, info, "pos")
    target = next(r for r in rows if r["pos"] == shown["pos"])
    row_id, old_value = target["id"], target["company"]
    _bounded(page)

    # Type over the first visible row's Company cell; Enter saves it.
    _company_cell(grid, row_id).click()
    page.keyboard.type(NEW_VALUE)
    page.keyboard.press("Enter")
    expect(status).to_have_text("Saved.")
    expect(_company_cell(grid, row_id)).to_have_text(NEW_VALUE)
    assert _company_of(app, info, row_id) == NEW_VALUE
    _bounded(page)

    # Ctrl-Z restores the old value, on screen and in the database; Ctrl-Shift-Z applies the new one again.
    page.keyboard.press("Control+z")
    expect(status).to_have_text("Undid the cell edit.")
    expect(_company_cell(grid, row_id)).to_have_text(old_value)
    assert _company_of(app, info, row_id) == old_value
    _bounded(page)
    page.keyboard.press("Control+Shift+Z")
    expect(status).to_have_text("Redid the cell edit.")
    expect(_company_cell(grid, row_id)).to_have_text(NEW_VALUE)
    assert _company_of(app, info, row_id) == NEW_VALUE
    _bounded(page)

    # Reload, scroll back to that row: the value is kept.
    page.reload()
    expect(page.locator("[data-grid-count]")).to_have_text(f"{n:,} rows")
    assert _settle(page, grid)["pos"] == 0
    visible = grid.evaluate("(g) => Math.floor((g.clientHeight - g.querySelector('.grid-header').offsetHeight) / 32)")
    back = _scroll_to_fraction(page, grid, target["pos"] / (n - visible))
    assert abs(back - target["pos"]) <= 2
    expect(_company_cell(grid, row_id)).to_have_text(NEW_VALUE)
    _assert_window_matches(app, grid, info, "pos")
    _bounded(page)

    # Sort by Company, A to Z, through the view editor: the edited value comes first, as in SQL.
    page.click("[data-chip=sort] summary")
    page.select_option("#s-col-1", label="Company")
    page.select_option("#s-dir-1", value="asc")
    page.click("[data-chip=view] summary")
    page.fill(f"#view-name-{info['table_id']}", "By company")
    page.click("button[name=as_new]")
    expect(page.locator("[data-view-summary]")).to_contain_text("sorted by Company", timeout=60_000)
    # A million rows: the first window comes at once while a job builds the order (a worker's run here).
    expect(page.locator(f"#table-{info['table_id']}-grid")).to_have_attribute("data-sorting", re.compile(r"^\d+$"))
    run_jobs()
    expect(page.locator("[data-grid-count]")).to_have_text(f"{n:,} rows", timeout=60_000)
    grid = page.locator(f"#table-{info['table_id']}-grid")
    top = _settle(page, grid)
    assert top["pos"] == 0
    order = f"{info['company']} ASC NULLS LAST, id"
    sorted_rows = _assert_window_matches(app, grid, info, order)
    assert (sorted_rows[0]["id"], sorted_rows[0]["company"]) == (row_id, NEW_VALUE)
    _bounded(page)

    # Scroll the sorted view: the order shown matches SQL's wherever it stops.
    for fraction in (0.35, 0.9):
        aimed = _scroll_to_fraction(page, grid, fraction)
        assert abs(aimed - fraction * n) < 0.01 * n
        _settle(page, grid, aimed)
        _assert_window_matches(app, grid, info, order)
        _bounded(page)
    assert page.problems == []
