"""Column operations over HTTP: roles and tenancy, retype with unconvertible cells, undo, formula jobs."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import select

from morket.core.errors import ValidationFailed
from morket.core.models import OutboxMessage
from morket.tables import column_service, formula_rows, service, undo
from morket.tables.undo import UndoConflict
from tests.browser.conftest import browser_page, committed_owner, live_server  # noqa: F401 - fixtures shared with tests/browser
from tests.factories import MembershipFactory, csrf_token, login, workspace_with_owner
from tests.support.seeding import seed_rows


@pytest.fixture
def setup(db):
    workspace, owner = workspace_with_owner()
    table = service.create_table(
        workspace,
        owner,
        "Leads",
        columns=[{"name": "Company", "type": "text"}, {"name": "Employees", "type": "text"}],
    )
    service.insert_rows(
        workspace,
        owner,
        table,
        [
            {"Company": "Acme", "Employees": "120"},
            {"Company": "Globex", "Employees": "about 40"},
            {"Company": "Initech", "Employees": "7"},
            {"Company": "Hooli", "Employees": "n/a"},
        ],
    )
    return workspace, owner, table


def _url(workspace, table, tail=""):
    return f"/w/{workspace.slug}/tables/{table.id}/columns{tail}"


def _post(client, workspace, table, tail, data, column):
    token = csrf_token(client, _url(workspace, table, f"/{column.id}/menu"))
    return client.post(_url(workspace, table, tail), data={"csrf_token": token, **data}, headers={"HX-Request": "true"})


@pytest.mark.parametrize(("role", "allowed"), [("viewer", False), ("member", True), ("admin", True)])
def test_column_operations_follow_roles(db, client, setup, role, allowed):
    workspace, owner, table = setup
    user = MembershipFactory(workspace=workspace, role=role).user
    login(client, user)
    column = table.live_columns[0]
    menu = client.get(_url(workspace, table, f"/{column.id}/menu"))
    assert menu.status_code == (200 if allowed else 403)
    if not allowed:
        login(client, owner)
        token = csrf_token(client, _url(workspace, table, f"/{column.id}/menu"))
        login(client, user)
        resp = client.post(_url(workspace, table, f"/{column.id}/rename"), data={"csrf_token": token, "name": "X"})
        assert resp.status_code == 403
        db.session.expire_all()
        assert service.get_table_or_404(workspace, table.id).live_columns[0].name == "Company"
        return
    resp = _post(client, workspace, table, f"/{column.id}/rename", {"name": "Account"}, column)
    assert resp.status_code == 204 and resp.headers["HX-Refresh"] == "true"
    db.session.expire_all()
    assert service.get_table_or_404(workspace, table.id).live_columns[0].name == "Account"


def test_another_workspace_gets_404(db, client, setup):
    workspace, _, table = setup
    other, stranger = workspace_with_owner()
    login(client, stranger)
    column = table.live_columns[0]
    for path in (f"/{column.id}/menu", "/new"):
        assert client.get(f"/w/{other.slug}/tables/{table.id}/columns{path}").status_code == 404
        assert client.get(_url(workspace, table, path)).status_code == 404
    resp = client.post(f"/w/{other.slug}/tables/{table.id}/columns/{column.id}/delete", headers={"HX-Request": "true"})
    assert resp.status_code in (400, 404)
    db.session.expire_all()
    assert len(service.get_table_or_404(workspace, table.id).live_columns) == 2


def test_bad_input_is_a_clear_error(db, client, setup):
    workspace, owner, table = setup
    login(client, owner)
    column = table.live_columns[0]
    resp = _post(client, workspace, table, "", {"name": "Score", "type": "formula", "expression": "{Nope} * 2"}, column)
    assert resp.status_code == 422
    assert "No column named “Nope”" in resp.get_data(as_text=True)
    resp = _post(client, workspace, table, f"/{column.id}/move", {"position": "abc"}, column)
    assert resp.status_code == 400 and "whole number" in resp.get_data(as_text=True)
    resp = _post(client, workspace, table, f"/{column.id}/width", {"width": "5000"}, column)
    assert resp.status_code == 422


def test_insert_left_or_right_puts_the_new_column_there_and_refuses_a_bad_place(db, client, setup):
    workspace, owner, table = setup
    login(client, owner)
    company, employees = table.live_columns
    resp = _post(client, workspace, table, "", {"name": "Region", "type": "text", "position": "2"}, company)
    assert resp.status_code == 204 and resp.headers["HX-Refresh"] == "true"
    db.session.expire_all()
    assert [c.name for c in service.get_table_or_404(workspace, table.id).live_columns] == [
        "Company",
        "Region",
        "Employees",
    ]
    for bad in ("9", "0", "left"):
        resp = _post(client, workspace, table, "", {"name": f"Bad {bad}", "type": "text", "position": bad}, company)
        assert resp.status_code in (400, 422), bad
        assert "whole number" in resp.get_data(as_text=True) or "Move to a place" in resp.get_data(as_text=True)
    db.session.expire_all()
    names = [c.name for c in service.get_table_or_404(workspace, table.id).live_columns]
    assert names == ["Company", "Region", "Employees"]


def test_retype_reports_and_keeps_unconvertible_cells(db, client, setup, run_jobs):
    workspace, owner, table = setup
    login(client, owner)
    column = table.live_columns[1]
    resp = _post(client, workspace, table, f"/{column.id}/retype", {"type": "number"}, column)
    assert resp.status_code == 200 and 'hx-trigger="every 1s"' in resp.get_data(as_text=True)
    job = db.session.scalars(select(column_service.ColumnJob)).one()
    assert db.session.scalars(select(OutboxMessage.job_id)).all()[-1] == f"retype-{table.id}-{column.id}-{job.id}"
    run_jobs()
    progress = client.get(_url(workspace, table, f"/jobs/{job.id}"))
    body = progress.get_data(as_text=True)
    assert progress.status_code == 286
    assert "2 cells" in body and "Row 2: “about 40”" in body and "Row 4: “n/a”" in body
    db.session.expire_all()
    table = service.get_table_or_404(workspace, table.id)
    assert table.live_columns[1].type == "number"
    rows = service.read_window(workspace, owner, table, None, 0, 10)
    assert [r.cells[1] for r in rows] == [120, None, 7, None]
    assert rows[1].cell_state[str(column.id)]["original"] == "about 40"
    # Converting back to text restores the originals.
    column_service.start_retype(workspace, owner, table, column.id, "text")
    run_jobs()
    db.session.expire_all()
    table = service.get_table_or_404(workspace, table.id)
    rows = service.read_window(workspace, owner, table, None, 0, 10)
    assert [r.cells[1] for r in rows] == ["120", "about 40", "7", "n/a"]
    assert all(not (r.cell_state or {}).get(str(column.id)) for r in rows)


def test_undo_of_column_operations(db, setup):
    workspace, owner, table = setup
    first, second = table.live_columns
    column_service.rename_table_column(workspace, owner, table, first.id, "Account")
    column_service.move_column(workspace, owner, table, second.id, 0)
    column_service.set_column_hidden(workspace, owner, table, None, first.id, True)
    column_service.delete_table_column(workspace, owner, table, second.id)
    assert [c.id for c in table.live_columns] == [first.id]
    undo.undo_last(workspace, owner, table)
    assert [c.id for c in table.live_columns] == [second.id, first.id]
    undo.undo_last(workspace, owner, table)
    assert column_service.default_view(workspace, table).hidden_column_ids == []
    undo.undo_last(workspace, owner, table)
    assert [c.id for c in table.live_columns] == [first.id, second.id]
    undo.redo_next(workspace, owner, table)
    assert [c.id for c in table.live_columns] == [second.id, first.id]
    undo.undo_last(workspace, owner, table)
    # Someone else renames the column: undoing my rename says so and keeps their name.
    other = MembershipFactory(workspace=workspace, role="member").user
    column_service.rename_table_column(workspace, other, table, first.id, "Theirs")
    with pytest.raises(UndoConflict):
        undo.undo_last(workspace, owner, table)
    assert first.name == "Theirs"


def test_formula_recompute_runs_as_a_job_and_reads_stay_available(db, client, setup, run_jobs):
    workspace, owner, table = setup
    number = column_service.add_table_column(workspace, owner, table, "Seats", "number")[0]
    seed_rows(workspace, owner, table, 3000, seed=3)
    login(client, owner)
    column = table.live_columns[0]
    resp = _post(
        client, workspace, table, "", {"name": "Double", "type": "formula", "expression": "{Seats} * 2"}, column
    )
    assert resp.status_code == 200 and "Computing the formula" in resp.get_data(as_text=True)
    job = db.session.scalars(select(column_service.ColumnJob)).one()
    assert job.kind == "formula" and not job.finished
    assert db.session.scalars(select(OutboxMessage.job_id)).all()[-1] == job.job_id
    # The request returned before any formula cell was written; the grid still reads.
    db.session.expire_all()
    table = service.get_table_or_404(workspace, table.id)
    window = client.get(f"/w/{workspace.slug}/tables/{table.id}/rows?start=2900&limit=50")
    assert window.status_code == 200
    formula_col = table.live_columns[-1]
    before = service.read_window(workspace, owner, table, None, 2900, 50)
    assert all(r.values(table)[formula_col.id] is None for r in before)
    assert client.get(_url(workspace, table, f"/jobs/{job.id}")).status_code == 200
    run_jobs()
    db.session.expire_all()
    table = service.get_table_or_404(workspace, table.id)
    after = service.read_window(workspace, owner, table, None, 2900, 50)
    for row in after:
        values = row.values(table)
        assert values[formula_col.id] == (None if values[number.id] is None else str(values[number.id] * 2))
    assert client.get(_url(workspace, table, f"/jobs/{job.id}")).status_code == 286


def test_the_grid_window_shows_formula_errors_in_their_cells(db, client, setup, run_jobs):
    workspace, owner, table = setup
    column, _ = column_service.add_table_column(
        workspace, owner, table, "Per head", "formula", config={"expression": '100 / {Employees} & "x"'}
    )
    run_jobs()
    login(client, owner)
    body = client.get(f"/w/{workspace.slug}/tables/{table.id}/rows?start=0&limit=10").get_data(as_text=True)
    cells = re.findall(rf'<div class="grid-cell[^"]*"[^>]*data-col-id="{column.id}"[^>]*>[^<]*</div>', body)
    assert len(cells) == 4
    assert "is-error" not in cells[0] and ">0.83333333333333333333x<" in cells[0]
    assert 'is-error" ' in cells[1] and 'title="/: not a number"' in cells[1]
    assert "is-error" not in cells[2]


def test_rename_follows_formulas_and_delete_is_refused_while_used(db, setup, run_jobs):
    workspace, owner, table = setup
    employees = table.live_columns[1]
    column, _ = column_service.add_table_column(
        workspace, owner, table, "Label", "formula", config={"expression": 'CONCAT({Company}, " / ", {employees})'}
    )
    column_service.rename_table_column(workspace, owner, table, employees.id, "Headcount")
    assert column.config["expression"] == 'CONCAT({Company}, " / ", {Headcount})'
    with pytest.raises(ValidationFailed, match="used by the formula of Label"):
        column_service.delete_table_column(workspace, owner, table, employees.id)
    run_jobs()
    db.session.expire_all()
    table = service.get_table_or_404(workspace, table.id)
    assert service.read_window(workspace, owner, table, None, 0, 1)[0].cells[-1] == "Acme / 120"


def test_hostile_column_names_never_reach_sql(db, owner):
    workspace, user = owner
    evil = 'x"; DROP TABLE users; --'
    table = service.create_table(workspace, user, "Evil", columns=[{"name": evil, "type": "number"}])
    service.insert_rows(workspace, user, table, [{evil: "21"}])
    column, _ = column_service.add_table_column(
        workspace, user, table, "Twice", "formula", config={"expression": "{" + evil + "} * 2"}
    )
    formula_rows.recompute_formulas(workspace, table, lo=0, hi=10**12)
    assert service.read_window(workspace, user, table, None, 0, 1)[0].values(table)[column.id] == "42"


BROWSER_PASSWORD = "columns browser passphrase"


@pytest.fixture
def committed_table(app, live_server):  # noqa: F811
    """A committed small table and its owner; its storage is dropped afterwards."""

    from morket.extensions import db
    from morket.workspaces.models import Workspace

    with app.app_context():
        workspace, user = committed_owner(
            email="columns@example.com",
            name="Cols",
            slug="columns-co",
            workspace_name="Columns Co",
            password=BROWSER_PASSWORD,
        )
        table = service.create_table(
            workspace,
            user,
            "Pipeline",
            columns=[{"name": "Company", "type": "text"}, {"name": "Seats", "type": "number"}],
        )
        service.insert_rows(
            workspace, user, table, [{"Company": "Acme", "Seats": "3"}, {"Company": "Hooli", "Seats": "0"}]
        )
        db.session.commit()
        info = {"workspace_id": workspace.id, "slug": workspace.slug, "table_id": table.id}
    try:
        yield info
    finally:
        with app.app_context():
            workspace = db.session.get(Workspace, info["workspace_id"])
            service.delete_table(workspace, None, service.get_table_or_404(workspace, info["table_id"]))
            db.session.commit()


@pytest.mark.browser
def test_header_menu_rename_and_formula_column_in_a_browser(app, live_server, browser_page, committed_table, run_jobs):  # noqa: F811
    from playwright.sync_api import expect

    page, info = browser_page, committed_table
    page.goto(f"{live_server}/login")
    page.fill("#email", "columns@example.com")
    page.fill("#password", BROWSER_PASSWORD)
    page.click("form button[type=submit]")
    page.goto(f"{live_server}/w/{info['slug']}/tables/{info['table_id']}")
    grid = page.locator(f"#table-{info['table_id']}-grid")
    expect(grid.locator(".grid-row")).to_have_count(2)
    # Keyboard: Enter on a focused header opens its menu, Escape closes it.
    seats = grid.locator(".grid-col-header").nth(1)
    seats.focus()
    page.keyboard.press("Enter")
    menu = page.locator(".columns-popover .columns-menu")
    expect(menu).to_be_visible()
    page.keyboard.press("Escape")
    expect(page.locator(".columns-popover")).to_be_hidden()
    # Right-click: rename the column; the page comes back with the new header.
    seats.click(button="right")
    menu.locator("input[name=name]").fill("Headcount")
    menu.get_by_role("button", name="Rename").click()
    expect(grid.locator(".grid-col-header").nth(1)).to_contain_text("Headcount")
    # The rename reloads the page: wait for the header script to have decorated it (and bound '+').
    expect(grid.locator(".grid-col-header .col-menu-btn").first).to_be_attached()
    # Add a formula column: a bad formula is refused in place, a good one shows its progress.
    page.locator(".col-add-btn").click()
    form = page.locator(".columns-popover .columns-form")
    form.locator("input[name=name]").fill("Per seat")
    form.locator("select[name=type]").select_option("formula")
    form.locator("textarea[name=expression]").fill("100 / {Nope}")
    form.get_by_role("button", name="Add column").click()
    expect(form.locator(".columns-error")).to_contain_text("No column named “Nope”")
    form.locator("textarea[name=expression]").fill("100 / {Headcount}")
    form.get_by_role("button", name="Add column").click()
    expect(form.locator(".columns-job")).to_contain_text("Computing the formula")
    run_jobs()
    expect(form.locator(".columns-job")).to_contain_text("1 cell shows an error", timeout=15_000)
    form.get_by_role("link", name="Reload the grid").click()
    cells = grid.locator(".grid-row .grid-cell:nth-child(4)")
    expect(cells.nth(0)).to_have_text(re.compile(r"^33\.33333333"))
    expect(cells.nth(1)).to_have_class(re.compile(r"\bis-error\b"))
    expect(cells.nth(1)).to_have_attribute("title", "Division by zero")
    # Drag a header onto the first one: the column moves there.
    grid.locator(".grid-col-header").nth(1).drag_to(grid.locator(".grid-col-header").nth(0))
    expect(grid.locator(".grid-col-header").nth(0)).to_contain_text("Headcount")
    # The refused formula is the one expected error response.
    assert [p for p in page.problems if "422" not in p] == []


def test_running_jobs_are_listed_for_readers_until_they_finish(db, client, setup, run_jobs):
    workspace, owner, table = setup
    viewer = MembershipFactory(workspace=workspace, role="viewer").user
    job = column_service.start_retype(workspace, owner, table, table.live_columns[1].id, "number")
    login(client, viewer)
    listed = client.get(_url(workspace, table, "/jobs")).get_data(as_text=True)
    assert f'id="column-job-{job.id}"' in listed and "Converting the column to number" in listed
    run_jobs()
    assert client.get(_url(workspace, table, "/jobs")).get_data(as_text=True).strip() == ""


def test_retype_to_a_select_takes_its_options_from_the_values_and_undo_converts_back(db, setup, run_jobs):
    workspace, owner, table = setup
    company = table.live_columns[0]
    column_service.start_retype(workspace, owner, table, company.id, "single_select")
    run_jobs()
    db.session.expire_all()
    table = service.get_table_or_404(workspace, table.id)
    company = table.live_columns[0]
    assert company.type == "single_select"
    assert company.config["options"] == ["Acme", "Globex", "Hooli", "Initech"]
    undo.undo_last(workspace, owner, table)
    job = db.session.scalars(select(column_service.ColumnJob).order_by(column_service.ColumnJob.id.desc())).first()
    assert job.params["to_type"] == "text" and not job.params["record"]
    run_jobs()
    db.session.expire_all()
    table = service.get_table_or_404(workspace, table.id)
    assert table.live_columns[0].type == "text"
    assert [r.cells[0] for r in service.read_window(workspace, owner, table, None, 0, 10)] == [
        "Acme",
        "Globex",
        "Initech",
        "Hooli",
    ]
