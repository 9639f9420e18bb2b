"""Sorting a large table does not make the user wait (``morket.tables.sorting``).

On a 120,000-row table (over ``BACKGROUND_ORDER_AT``), in Chromium: saving a sort shows the first
sorted rows at once, read by a top-k query, with "Sorting 120,000 rows… N%" in the status bar,
while the order is built by a job; a deep window waits (no rows, the progress header) until the
job has run, then every window is SQL's order. An edit of the sorted column keeps the view usable:
its windows come from the previous order, marked as sorting, until the rebuilt order puts the
edited row in its place. A build that rows were deleted during leaves them out. A filtered sort's
first windows keep the filter, empty cells last and ties by id, and give the exact count once the
filter's last row is read. A build that fails leaves the view stale and does not start again at
once.
"""
# ruff: noqa: S608 - the independent record is plain SQL over generated (integer) table names

from __future__ import annotations

import re
import threading
from pathlib import Path

import pytest
from playwright.sync_api import expect
from sqlalchemy import text

from morket.tables import sorting
from tests.browser.conftest import browser_page, committed_owner, live_server  # noqa: F401 - the browser fixtures
from tests.tables.test_grid_browser import _scroll_to_fraction, _settle

SCREENSHOTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "screenshots"
PASSWORD = "sort background passphrase"
N = 120_000

# What the browser got for a window of the view: its row ids, positions and the sorting header.
FETCH = """async (url) => {
  const resp = await fetch(url, {headers: {'HX-Request': 'true'}});
  const html = await resp.text();
  const box = document.createElement('div');
  box.innerHTML = html;
  const rows = [...box.querySelectorAll('.grid-row')];
  return {status: resp.status, sorting: resp.headers.get('X-Grid-Sorting'), total: resp.headers.get('X-Grid-Total'),
          ids: rows.map((r) => Number(r.dataset.rowId)), pos: rows.map((r) => Number(r.dataset.pos))};
}"""
SHOWN = "(g) => [...g.querySelectorAll('.grid-row')].map((r) => Number(r.dataset.rowId))"


@pytest.fixture
def large_table(app, live_server):  # noqa: F811
    from morket.extensions import db
    from morket.tables import service
    from morket.workspaces.models import Workspace
    from tests.support.seeding import seed_rows

    assert sorting.in_background(N)
    with app.app_context():
        workspace, user = committed_owner(
            email="sorts@example.com", name="Sorts", slug="sorts-co", workspace_name="Sorts Co", password=PASSWORD
        )
        table = service.create_table(
            workspace,
            user,
            "Large",
            columns=[{"name": "Company", "type": "text"}, {"name": "Employees", "type": "number"}],
        )
        seed_rows(workspace, user, table, N, seed=11)
        db.session.commit()
        info = {"workspace_id": workspace.id, "user_id": user.id, "slug": workspace.slug, "table_id": table.id}
        info["rows"] = f"ut.{table.storage_name}"
        info["company"], info["employees"] = (c.storage_name for c in table.live_columns)
        info["employees_id"] = table.live_columns[1].id
    try:
        yield info
    finally:
        with app.app_context():
            workspace = db.session.get(Workspace, info["workspace_id"])
            table = service.get_table_or_404(workspace, info["table_id"])
            service.delete_table(workspace, None, table)
            db.session.commit()


def _sql_order(app, info, start: int, count: int) -> list[int]:
    """The view's order as SQL gives it: employees, largest first, empty cells last, ties by id."""
    from morket.extensions import db

    with app.app_context():
        return list(
            db.session.execute(
                text(
                    f"SELECT id FROM {info['rows']} ORDER BY {info['employees']} DESC NULLS LAST, id OFFSET :s LIMIT :l"
                ),
                {"s": start, "l": count},
            ).scalars()
        )


@pytest.mark.browser
def test_a_sort_shows_its_first_rows_while_the_order_builds(app, live_server, browser_page, large_table, run_jobs):  # noqa: F811
    page, base, info = browser_page, live_server, large_table
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.goto(f"{base}/login")
    page.fill("#email", "sorts@example.com")
    page.fill("#password", PASSWORD)
    page.click("form button[type=submit]")
    page.goto(f"{base}/w/{info['slug']}/tables/{info['table_id']}")
    grid = page.locator(f"#table-{info['table_id']}-grid")
    expect(page.locator("[data-grid-count]")).to_have_text(f"{N:,} rows")

    # Sort by employees, largest first, through the view editor, saved as a new view.
    page.click("[data-chip=sort] summary")
    page.select_option("#s-col-1", label="Employees")
    page.select_option("#s-dir-1", value="desc")
    page.click("[data-chip=view] summary")
    page.fill(f"#view-name-{info['table_id']}", "Largest first")
    page.click("button[name=as_new]")
    expect(page.locator("[data-view-summary]")).to_contain_text("sorted by Employees")

    # No worker has run: the first rows are there, in SQL's order, and the status bar says it sorts.
    status = page.locator(f'[data-grid="table-{info["table_id"]}-grid"] [data-grid-status]')
    expect(status).to_have_text(re.compile(r"^Sorting 120,000 rows… \d+%$"))
    expect(grid).to_have_attribute("data-sorting", re.compile(r"^\d+$"))
    _settle(page, grid)
    shown = grid.evaluate(SHOWN)
    assert len(shown) >= 20
    assert shown == _sql_order(app, info, 0, len(shown))
    page.screenshot(path=str(SCREENSHOTS / "grid-sorting-progress.png"))

    view_id = grid.get_attribute("data-view-id")
    rows_url = f"/w/{info['slug']}/tables/{info['table_id']}/rows?view={view_id}"
    deep = page.evaluate(FETCH, f"{rows_url}&start=60000&limit=50")
    assert deep["status"] == 200 and deep["ids"] == []
    assert deep["sorting"] is not None and deep["sorting"].endswith(f" {N}")
    near = page.evaluate(FETCH, f"{rows_url}&start=900&limit=100")
    assert near["ids"] == _sql_order(app, info, 900, 100) and near["pos"] == list(range(900, 1000))

    # The worker builds the order: the grid notices within its next poll, and every window is SQL's.
    assert run_jobs() >= 1
    expect(status).to_have_text(f"{N:,} rows", timeout=10_000)
    expect(grid).not_to_have_attribute("data-sorting", re.compile(".*"))
    deep = page.evaluate(FETCH, f"{rows_url}&start=60000&limit=50")
    assert deep["sorting"] is None and deep["total"] == str(N)
    assert deep["ids"] == _sql_order(app, info, 60000, 50) and deep["pos"] == list(range(60000, 60050))
    # The job indexed the sort's first key for the next sort that starts with it (valid, empty cells last).
    from morket.extensions import db

    with app.app_context():
        found = db.session.execute(
            text(
                "SELECT i.indisvalid, pg_get_indexdef(i.indexrelid) FROM pg_index i JOIN pg_class c "
                "ON c.oid = i.indexrelid WHERE c.relname = :name"
            ),
            {"name": f"{info['rows'].split('.')[1]}_k{info['employees_id']}d"},
        ).one()
    assert found[0] and f"{info['employees']} DESC NULLS LAST" in found[1]
    aimed = _scroll_to_fraction(page, grid, 0.7)
    _settle(page, grid, aimed)
    rows = grid.evaluate(
        "(g) => [...g.querySelectorAll('.grid-row')].map(r => [Number(r.dataset.pos), Number(r.dataset.rowId)])"
    )
    assert [r[1] for r in rows] == _sql_order(app, info, rows[0][0], len(rows))

    # An edit of the sorted column: the view keeps answering from its previous order, says it sorts,
    # and the rebuilt order puts the edited row first.
    last_id = _sql_order(app, info, N - 1, 1)[0]
    _edit_employees(app, info, last_id, "999999999")
    stale = page.evaluate(FETCH, f"{rows_url}&start=0&limit=50")
    assert stale["sorting"] is not None and len(stale["ids"]) == 50 and stale["ids"][0] != last_id
    run_jobs()
    fresh = page.evaluate(FETCH, f"{rows_url}&start=0&limit=50")
    assert fresh["sorting"] is None and fresh["ids"][0] == last_id
    assert fresh["ids"] == _sql_order(app, info, 0, 50)
    assert page.problems == []


def _edit_employees(app, info, row_id: int, value: str) -> None:
    from morket.extensions import db
    from morket.tables import service
    from morket.workspaces.models import Workspace

    with app.app_context():
        workspace = db.session.get(Workspace, info["workspace_id"])
        table = service.get_table_or_404(workspace, info["table_id"], lock="share")
        service.update_cell(workspace, None, table, row_id, info["employees_id"], value)
        db.session.commit()


@pytest.mark.browser
def test_rows_deleted_during_a_build_are_left_out(app, live_server, large_table, monkeypatch):  # noqa: F811
    """A delete that commits after the build's snapshot, before its swap: the new order drops the row."""
    from morket.extensions import db
    from morket.tables import service, storage
    from morket.workspaces.models import Workspace

    info = large_table
    doomed = _sql_order(app, info, 10, 1)[0]
    built = storage.build_order

    def build_then_delete(*args, **kwargs):
        size = built(*args, **kwargs)

        def delete() -> None:  # another request, committed while the build's transaction is open
            with app.app_context():
                workspace = db.session.get(Workspace, info["workspace_id"])
                table = service.get_table_or_404(workspace, info["table_id"], lock="update")
                service.delete_rows(workspace, None, table, [doomed])
                db.session.commit()

        worker = threading.Thread(target=delete)
        worker.start()
        worker.join(30)
        return size

    with app.app_context():
        workspace = db.session.get(Workspace, info["workspace_id"])
        table = service.get_table_or_404(workspace, info["table_id"])
        view = service.create_view(workspace, None, table, "Largest")
        service.update_view(workspace, None, table, view, sort=[{"column_id": info["employees_id"], "dir": "desc"}])
        db.session.commit()
        view_id = view.id
    monkeypatch.setattr(storage, "build_order", build_then_delete)
    with app.app_context():
        assert sorting.build_in_background(info["table_id"], view_id) == N - 1
    monkeypatch.setattr(storage, "build_order", built)
    with app.app_context():
        workspace = db.session.get(Workspace, info["workspace_id"])
        table = service.get_table_or_404(workspace, info["table_id"])
        view = service.get_view_or_404(workspace, table, view_id)
        assert not view.order_stale and view.order_size == N - 1
        assert service.count_rows(workspace, None, table, view) == N - 1
        got = [r.id for r in service.read_window(workspace, None, table, view, 0, 20)]
        assert doomed not in got
        assert got == _sql_order(app, info, 0, 20)


@pytest.mark.browser
def test_a_filtered_sort_reads_its_first_rows_with_empty_cells_last(app, live_server, large_table, run_jobs):  # noqa: F811
    """Before the order exists: the filter applies, empty cells come last, ties go by id, and the
    window holding the filter's last row gives the exact count; the built order agrees."""
    from morket.accounts.models import User
    from morket.extensions import db
    from morket.tables import service
    from morket.workspaces.models import Workspace
    from tests.factories import login

    info = large_table
    where = f"{info['company']} LIKE 'Acme 1%'"
    with app.app_context():
        blanks = list(
            db.session.execute(text(f"SELECT id FROM {info['rows']} WHERE {where} ORDER BY id LIMIT 7")).scalars()
        )
    for row_id in blanks:
        _edit_employees(app, info, row_id, "")
    with app.app_context():
        matching = db.session.execute(text(f"SELECT count(*) FROM {info['rows']} WHERE {where}")).scalar_one()
        expected = list(
            db.session.execute(
                text(f"SELECT id FROM {info['rows']} WHERE {where} ORDER BY {info['employees']} DESC NULLS LAST, id")
            ).scalars()
        )
        assert 300 < matching < 900 and expected[-7:] == blanks
        workspace = db.session.get(Workspace, info["workspace_id"])
        table = service.get_table_or_404(workspace, info["table_id"])
        company_id = table.live_columns[0].id
        view = service.create_view(
            workspace,
            None,
            table,
            "Acme 1",
            sort=[{"column_id": info["employees_id"], "dir": "desc"}],
            filters={
                "op": "and",
                "conditions": [{"column_id": company_id, "operator": "starts_with", "value": "Acme 1"}],
            },
        )
        db.session.commit()
        view_id, user = view.id, db.session.get(User, info["user_id"])
        client = app.test_client()
        login(client, user)
        db.session.commit()  # the server-side session the cookie names

    def window(start: int, limit: int) -> tuple[list[int], str, str | None]:
        url = f"/w/{info['slug']}/tables/{info['table_id']}/rows?view={view_id}&start={start}&limit={limit}"
        with app.app_context():
            resp = client.get(url, headers={"HX-Request": "true"})
        assert resp.status_code == 200
        ids = [int(i) for i in re.findall(r'data-row-id="(\d+)"', resp.get_data(as_text=True))]
        return ids, resp.headers["X-Grid-Total"], resp.headers.get("X-Grid-Sorting")

    seen: list[int] = []
    for start in (0, 300, 600):
        ids, total, building = window(start, 300)
        assert building is not None and ids == expected[start : start + 300]
        seen += ids
        if len(ids) < 300:
            assert total == str(matching)  # the filter's last row is in this window
            break
        assert total == str(N)  # at most every row, until the filter's end is seen
    assert seen == expected
    run_jobs()
    ids, total, building = window(matching - 20, 20)
    assert building is None and ids == expected[-20:] and total == str(matching)


@pytest.mark.browser
def test_a_failed_build_leaves_the_view_stale_and_waits_before_another(app, live_server, large_table, monkeypatch):  # noqa: F811
    from morket.extensions import db
    from morket.tables import service, storage
    from morket.workspaces.models import Workspace

    info = large_table
    with app.app_context():
        workspace = db.session.get(Workspace, info["workspace_id"])
        table = service.get_table_or_404(workspace, info["table_id"])
        view = service.create_view(
            workspace, None, table, "Largest", sort=[{"column_id": info["employees_id"], "dir": "desc"}]
        )
        db.session.commit()
        view_id = view.id
        first = sorting.queue_build(info["table_id"], view_id, N)

    def broken(*args, **kwargs):
        raise RuntimeError("the disk is full")

    monkeypatch.setattr(storage, "build_order", broken)
    with app.app_context(), pytest.raises(RuntimeError):
        sorting.build_in_background(info["table_id"], view_id)
    with app.app_context():
        workspace = db.session.get(Workspace, info["workspace_id"])
        table = service.get_table_or_404(workspace, info["table_id"])
        view = service.get_view_or_404(workspace, table, view_id)
        assert view.order_stale and view.order_size is None
        assert not storage.order_exists(table.id, view.id)
        assert not db.session.execute(
            text("SELECT to_regclass(:n) IS NOT NULL"), {"n": f"ut.o_{table.id}_{view_id}_n"}
        ).scalar()
        # The failed build's record holds for a minute: a grid asking again does not queue another yet.
        again = sorting.queue_build(info["table_id"], view_id, N)
        assert again["queued"] == first["queued"] and "started" in again
        ttl = app.extensions["morket_redis"].ttl(f"morket:order-build:{view_id}")
        assert 0 < ttl <= sorting.FAILED_BUILD_PAUSE_S
