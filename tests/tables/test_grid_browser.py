"""The grid in a real browser over a big table: scroll anywhere, the right rows, a bounded DOM, a sorted view."""
# ruff: noqa: S608 - the independent record is plain SQL over generated (integer) table names

from __future__ import annotations

import re
import time

import pytest
from playwright.sync_api import expect
from sqlalchemy import text

from tests.browser.conftest import browser_page, committed_owner, live_server  # noqa: F401 - fixtures shared with tests/browser

PASSWORD = "grid browser passphrase"
MAX_ROWS_IN_DOM = 300

# The first row fully below the sticky header: its position, its row number and its company cell.
FIRST_VISIBLE = """(grid) => {
  const top = grid.querySelector('.grid-header').getBoundingClientRect().bottom;
  for (const row of grid.querySelectorAll('.grid-row')) {
    if (row.getBoundingClientRect().top >= top - 2) {
      return {pos: Number(row.dataset.pos), num: row.querySelector('.grid-rownum').textContent,
              company: row.querySelector('.grid-cell').textContent, count: grid.querySelectorAll('.grid-row').length};
    }
  }
  return null;
}"""


@pytest.fixture
def big_table(app, live_server, request):  # noqa: F811
    """A committed table of ``request.param`` rows (COPY), its owner, and cleanup of its storage."""
    from morket.extensions import db
    from morket.tables import service
    from morket.workspaces.models import Workspace
    from tests.support.seeding import seed_rows

    n = request.param
    with app.app_context():
        workspace, user = committed_owner(
            email="grid@example.com", name="Grid", slug="grid-co", workspace_name="Grid Co", password=PASSWORD
        )
        table = service.create_table(
            workspace,
            user,
            "Big",
            columns=[{"name": "Company", "type": "text"}, {"name": "Employees", "type": "number"}],
        )
        started = time.perf_counter()
        seed_rows(workspace, user, table, n, seed=3)
        db.session.commit()
        db.session.execute(text(f"ANALYZE ut.{table.storage_name}"))
        db.session.commit()
        seeded_in = time.perf_counter() - started
        info = {
            "workspace_id": workspace.id,
            "slug": workspace.slug,
            "table_id": table.id,
            "rows": f"ut.{table.storage_name}",
            "n": n,
        }
        info["company"], info["employees"] = (c.storage_name for c in table.live_columns)
        info["seeded_in"] = seeded_in
    try:
        yield info
    finally:
        with app.app_context():
            workspace = db.session.get(Workspace, info["workspace_id"])
            table = service.get_table_or_404(workspace, info["table_id"])
            service.delete_table(workspace, None, table)
            db.session.commit()


def _expected(app, sql: str, **params):
    from morket.extensions import db

    with app.app_context():
        return db.session.execute(text(sql), params).one()


def _settle(page, grid, near_pos: int | None = None):
    """Wait until the window covers the viewport (no request in flight), checking the DOM bound as it goes."""
    deadline = time.monotonic() + 60
    while True:
        state = grid.evaluate(FIRST_VISIBLE)
        assert page.evaluate("document.querySelectorAll('.grid-row').length") <= MAX_ROWS_IN_DOM
        loading = grid.evaluate("(g) => g.classList.contains('is-loading')")
        if state and not loading and (near_pos is None or abs(state["pos"] - near_pos) <= 40):
            return state
        assert time.monotonic() < deadline, f"the grid did not settle: {state}"
        page.wait_for_timeout(50)


DRAG = """async (g, target) => {
  // A scrollbar drag: the thumb moves a little every frame, from the current place to ``target``.
  const from = g.scrollTop / Math.max(1, g.scrollHeight - g.clientHeight);
  let most = 0;
  for (let i = 1; i <= 24; i++) {
    g.scrollTop = (from + (target - from) * i / 24) * (g.scrollHeight - g.clientHeight);
    await new Promise((done) => requestAnimationFrame(done));
    most = Math.max(most, document.querySelectorAll('.grid-row').length);
  }
  return most;
}"""


# The row the scroll position points at (the scaled scroll range maps scrollTop to a row).
AIMED = """(g) => {
  const header = g.querySelector('.grid-header').offsetHeight;
  const visible = Math.floor((g.clientHeight - header) / 32);
  return Math.floor(g.scrollTop / (g.scrollHeight - g.clientHeight) * (Number(g.dataset.total) - visible));
}"""


def _scroll_to_fraction(page, grid, fraction: float) -> int:
    """Drag the scrollbar to ``fraction``: one window fetch, for where it stops; return the aimed position."""
    fetched = []
    listener = lambda req: "/rows?" in req.url and fetched.append(req.url)  # noqa: E731
    page.on("request", listener)
    most = grid.evaluate(DRAG, fraction)
    assert most <= MAX_ROWS_IN_DOM
    aimed = grid.evaluate(AIMED)
    _settle(page, grid, aimed)
    page.remove_listener("request", listener)
    # A frame can stall on a busy machine and let the debounce fire once mid-drag; never more.
    assert 1 <= len(fetched) <= 2, fetched
    return aimed


def _check_big_grid(app, page, base, info, run_jobs):
    page.goto(f"{base}/login")
    page.fill("#email", "grid@example.com")
    page.fill("#password", PASSWORD)
    page.click("form button[type=submit]")
    page.goto(f"{base}/w/{info['slug']}/tables/{info['table_id']}")
    grid = page.locator(f"#table-{info['table_id']}-grid")
    n = info["n"]
    expect(page.locator("[data-grid-count]")).to_have_text(f"{n:,} rows")
    first = _settle(page, grid)
    assert first["pos"] == 0 and first["num"] == "1"
    # The row number opens the row's panel; Escape closes it; Space on a focused row number opens it again.
    panel = page.locator(f"#table-{info['table_id']}-panel")
    grid.locator(".grid-row").first.locator(".grid-rownum").click()
    expect(panel).to_be_visible()
    expect(panel).to_contain_text(first["company"])
    page.keyboard.press("Escape")
    expect(panel).to_be_hidden()
    grid.locator(".grid-row").nth(1).locator(".grid-rownum").focus()
    page.keyboard.press(" ")
    expect(panel).to_contain_text("Row details")
    panel.locator("[data-close-panel]").click()
    expect(panel).to_be_hidden()

    aimed = _scroll_to_fraction(page, grid, 0.9)
    assert abs(aimed - 0.9 * n) < 0.01 * n
    shown = _settle(page, grid, aimed)
    assert shown["num"] == str(shown["pos"] + 1)
    company = _expected(
        app, f"SELECT {info['company']} FROM {info['rows']} ORDER BY pos OFFSET :p LIMIT 1", p=shown["pos"]
    )[0]
    assert shown["company"] == company

    page.mouse.move(400, 400)
    before_wheel = grid.evaluate("(g) => g.scrollTop")
    page.mouse.wheel(0, 32 * 50)
    # The browser scrolls after the wheel event is dispatched: wait for it, then for the rows there.
    page.wait_for_function("([g, top]) => g.scrollTop > top", arg=[grid.element_handle(), before_wheel])
    after_wheel = _settle(page, grid, grid.evaluate(AIMED))
    assert after_wheel["pos"] > shown["pos"]
    company = _expected(
        app, f"SELECT {info['company']} FROM {info['rows']} ORDER BY pos OFFSET :p LIMIT 1", p=after_wheel["pos"]
    )[0]
    assert after_wheel["company"] == company

    grid.evaluate("(g) => { g.scrollTop = g.scrollHeight; }")
    last = _settle(page, grid, n - 20)
    bottom = grid.evaluate(
        "(g) => [...g.querySelectorAll('.grid-row')].pop().querySelector('.grid-rownum').textContent"
    )
    assert bottom == str(n)
    assert last["count"] <= MAX_ROWS_IN_DOM

    # Sort by employees, largest first, through the view editor; then scroll and compare the order.
    page.click("[data-chip=sort] summary")
    page.select_option("#s-col-1", label="Employees")
    page.select_option("#s-dir-1", value="desc")
    page.click("[data-chip=view] summary")
    page.fill(f"#view-name-{info['table_id']}", "Largest first")
    page.click("button[name=as_new]")
    expect(page.locator("[data-view-summary]")).to_contain_text("sorted by Employees", timeout=60_000)
    # A million rows: the first window comes at once while a job builds the order (a worker's run here).
    expect(page.locator(f"#table-{info['table_id']}-grid")).to_have_attribute("data-sorting", re.compile(r"^\d+$"))
    run_jobs()
    expect(page.locator("[data-grid-count]")).to_have_text(f"{n:,} rows", timeout=60_000)
    grid = page.locator(f"#table-{info['table_id']}-grid")
    aimed = _scroll_to_fraction(page, grid, 0.5)
    shown = _settle(page, grid, aimed)
    rows = grid.evaluate(
        "(g) => [...g.querySelectorAll('.grid-row')].map(r => [Number(r.dataset.pos), Number(r.dataset.rowId)])"
    )
    start, ids = rows[0][0], [r[1] for r in rows]
    expected = _expected(
        app,
        f"SELECT array_agg(id) FROM (SELECT id FROM {info['rows']} "
        f"ORDER BY {info['employees']} DESC NULLS LAST, id OFFSET :s LIMIT :l) w",
        s=start,
        l=len(ids),
    )[0]
    assert ids == expected
    assert [r[0] for r in rows] == list(range(start, start + len(rows)))

    # Quick search narrows the rows and the count.
    count = _expected(app, f"SELECT count(*) FROM {info['rows']} WHERE {info['company']} ILIKE '%hooli 12%'")[0]
    page.fill(f"#grid-search-{info['table_id']}", "hooli 12")
    expect(page.locator("[data-grid-count]")).to_have_text(f"{count:,} {'match' if count == 1 else 'matches'}")
    shown = _settle(page, grid)
    assert shown["pos"] == 0 and "hooli 12" in shown["company"].lower()
    page.fill(f"#grid-search-{info['table_id']}", "no such company")
    expect(page.locator("[data-grid-count]")).to_have_text("0 matches")
    expect(grid.locator(".grid-nomatch")).to_contain_text("No rows match this search.")
    expect(grid.locator(".grid-nomatch")).to_contain_text("“no such company”")
    assert grid.locator(".grid-row").count() == 0
    page.fill(f"#grid-search-{info['table_id']}", "")
    expect(page.locator("[data-grid-count]")).to_have_text(f"{n:,} rows")
    expect(grid.locator(".grid-nomatch")).to_have_count(0)
    assert page.problems == []


# About 55 s on a busy two-core machine (half of it seeding), so it runs in the default suite.
@pytest.mark.browser
@pytest.mark.parametrize("big_table", [1_000_000], indirect=True)
def test_grid_scrolls_a_million_rows(app, live_server, browser_page, big_table, run_jobs):  # noqa: F811
    _check_big_grid(app, browser_page, live_server, big_table, run_jobs)
