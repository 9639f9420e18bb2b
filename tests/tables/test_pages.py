"""The table pages: list and create, the grid page, row windows, search and the row panel, by role."""
# ruff: noqa: S608 - the independent record is plain SQL over generated (integer) table names

from __future__ import annotations

import re
import time

import pytest
from sqlalchemy import text

from morket.tables import service
from morket.workspaces.models import Membership
from tests.factories import csrf_token, login
from tests.tables.conftest import _workspace_and_user

ROW_IDS = re.compile(r'class="grid-row" role="row" data-row-id="(\d+)" data-pos="(\d+)"')


def _member(db, workspace, role: str):
    _, user = _workspace_and_user(db, role.replace("_", ""))
    db.session.add(Membership(workspace_id=workspace.id, user_id=user.id, role=role))
    db.session.flush()
    return user


def _rows(client, workspace, table, **params):
    resp = client.get(
        f"/w/{workspace.slug}/tables/{table.id}/rows", query_string=params, headers={"HX-Request": "true"}
    )
    assert resp.status_code == 200, resp.get_data(as_text=True)[:500]
    found = ROW_IDS.findall(resp.get_data(as_text=True))
    return [int(i) for i, _ in found], [int(p) for _, p in found], resp


def _plain(db, sql: str, **params) -> list[int]:
    return list(db.session.execute(text(sql), params).scalars())


@pytest.mark.parametrize("role", ["owner", "admin", "member", "viewer"])
def test_every_reader_sees_the_list_grid_window_and_row(client, db, owner, seeded, role):
    workspace, user = owner
    if role != "owner":
        user = _member(db, workspace, role)
    login(client, user)
    base = f"/w/{workspace.slug}/tables"
    listing = client.get(base).get_data(as_text=True)
    assert "Accounts" in listing
    assert ("Create table" in listing) == (role != "viewer")
    page = client.get(f"{base}/{seeded.id}")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert f'id="table-{seeded.id}-grid"' in html and "1,000 rows" in html
    assert ("Read only" in html) == (role == "viewer")
    ids, _, _ = _rows(client, workspace, seeded, start=0, limit=10)
    assert len(ids) == 10
    assert client.get(f"{base}/{seeded.id}/rows/{ids[0]}").status_code == 200


def test_billing_admin_is_refused_and_another_workspace_gets_404(client, db, owner, stranger, seeded):
    workspace, _ = owner
    base = f"/w/{workspace.slug}/tables"
    login(client, _member(db, workspace, "billing_admin"))
    for path in (base, f"{base}/{seeded.id}", f"{base}/{seeded.id}/rows"):
        assert client.get(path).status_code == 403
    login(client, stranger[1])
    for path in (base, f"{base}/{seeded.id}", f"{base}/{seeded.id}/rows", f"{base}/{seeded.id}/rows/1"):
        assert client.get(path).status_code == 404
    # Their own workspace's URL with this table's id is a 404 as well.
    assert client.get(f"/w/{stranger[0].slug}/tables/{seeded.id}").status_code == 404


def test_viewer_cannot_create_rename_or_delete(client, db, owner, seeded):
    workspace, _ = owner
    login(client, _member(db, workspace, "viewer"))
    base = f"/w/{workspace.slug}/tables"
    token = csrf_token(client, "/w")
    assert client.post(base, data={"name": "Mine", "csrf_token": token}).status_code == 403
    assert client.post(f"{base}/{seeded.id}/rename", data={"name": "X", "csrf_token": token}).status_code == 403
    assert client.post(f"{base}/{seeded.id}/delete", data={"csrf_token": token}).status_code == 403
    assert service.get_table_or_404(workspace, seeded.id).name == "Accounts"


def test_create_rename_and_delete_a_table(client, db, owner):
    workspace, user = owner
    login(client, user)
    base = f"/w/{workspace.slug}/tables"
    empty = client.get(base).get_data(as_text=True)
    assert "Create your first table" in empty
    token = csrf_token(client, base)
    resp = client.post(base, data={"name": "  Prospects ", "folder": "Outbound", "csrf_token": token})
    assert resp.status_code == 303
    table = service.list_tables(workspace)[0]
    assert (table.name, table.folder) == ("Prospects", "Outbound")
    assert resp.headers["Location"].endswith(f"/tables/{table.id}")
    listing = client.get(base).get_data(as_text=True)
    assert "Outbound" in listing and "Prospects" in listing and "data-confirm=" in listing
    bad = client.post(base, data={"name": " ", "csrf_token": token})
    assert bad.status_code == 422 and "1 to 120 characters" in bad.get_data(as_text=True)
    assert client.post(f"{base}/{table.id}/rename", data={"name": "Leads", "csrf_token": token}).status_code == 303
    assert service.get_table_or_404(workspace, table.id).name == "Leads"
    assert client.post(f"{base}/{table.id}/delete", data={"csrf_token": token}).status_code == 303
    assert service.list_tables(workspace) == []
    assert client.post(base, data={"name": "No token"}).status_code == 400


@pytest.mark.parametrize("start", [0, 470, 940])
def test_window_has_exactly_the_rows_at_its_position(client, db, owner, seeded, start):
    workspace, user = owner
    login(client, user)
    ids, positions, resp = _rows(client, workspace, seeded, start=start, limit=100)
    expected = _plain(db, f"SELECT id FROM ut.{seeded.storage_name} ORDER BY pos LIMIT 100 OFFSET :o", o=start)
    assert ids == expected
    assert positions == list(range(start, start + len(expected)))
    assert resp.headers["X-Grid-Total"] == "1000"
    assert "HX-Request" in resp.headers["Vary"]
    body = resp.get_data(as_text=True)
    assert f'<div class="grid-rownum" role="rowheader" tabindex="-1" title="Open row">{start + 1}</div>' in body


def test_sorted_filtered_view_window_matches_sql(client, db, owner, seeded):
    workspace, user = owner
    col = {c.name: c for c in seeded.live_columns}
    view = service.create_view(
        workspace,
        user,
        seeded,
        "Big leads",
        sort=[{"column_id": col["Employees"].id, "dir": "desc"}, {"column_id": col["Company"].id, "dir": "asc"}],
        filters={
            "op": "or",
            "conditions": [
                {"column_id": col["Employees"].id, "operator": "gt", "value": 80000},
                {"column_id": col["Stage"].id, "operator": "equals", "value": "Churned"},
            ],
        },
    )
    login(client, user)
    emp, comp, stage = (col[n].storage_name for n in ("Employees", "Company", "Stage"))
    expected = _plain(
        db,
        f"SELECT id FROM ut.{seeded.storage_name} WHERE {emp} > 80000 OR {stage} = 'Churned' "
        f"ORDER BY {emp} DESC NULLS LAST, {comp} ASC NULLS LAST, id",
    )
    assert 100 < len(expected) < 900
    for start in (0, len(expected) // 2, len(expected) - 20):
        ids, positions, resp = _rows(client, workspace, seeded, start=start, limit=50, view=view.id)
        assert ids == expected[start : start + 50]
        assert positions[0] == start
        assert resp.headers["X-Grid-Total"] == str(len(expected))
    page = client.get(f"/w/{workspace.slug}/tables/{seeded.id}?view={view.id}").get_data(as_text=True)
    assert f"{len(expected):,} rows" in page


def test_search_narrows_the_rows_and_the_count(client, db, owner, seeded):
    workspace, user = owner
    company = next(c for c in seeded.live_columns if c.name == "Company").storage_name
    expected = _plain(db, f"SELECT id FROM ut.{seeded.storage_name} WHERE {company} ILIKE '%hooli%' ORDER BY pos")
    assert 0 < len(expected) < 1000
    login(client, user)
    ids, positions, resp = _rows(client, workspace, seeded, start=0, limit=300, q="HOOLI")
    assert ids == expected[:300]
    assert positions == list(range(len(ids)))
    assert resp.headers["X-Grid-Total"] == str(len(expected))
    if len(expected) > 10:
        ids, _, _ = _rows(client, workspace, seeded, start=10, limit=5, q="hooli")
        assert ids == expected[10:15]
    none, _, resp = _rows(client, workspace, seeded, q="no such company 100%_")
    assert none == [] and resp.headers["X-Grid-Total"] == "0"


def test_search_within_a_sorted_filtered_view(client, db, owner, seeded):
    workspace, user = owner
    col = {c.name: c for c in seeded.live_columns}
    view = service.create_view(
        workspace,
        user,
        seeded,
        "Leads by size",
        sort=[{"column_id": col["Employees"].id, "dir": "asc"}],
        filters={"op": "and", "conditions": [{"column_id": col["Stage"].id, "operator": "equals", "value": "Lead"}]},
    )
    emp, comp, stage = (col[n].storage_name for n in ("Employees", "Company", "Stage"))
    expected = _plain(
        db,
        f"SELECT id FROM ut.{seeded.storage_name} WHERE {stage} = 'Lead' AND {comp} ILIKE '%acme%' "
        f"ORDER BY {emp} ASC NULLS LAST, id",
    )
    assert expected
    login(client, user)
    ids, positions, resp = _rows(client, workspace, seeded, start=0, limit=300, view=view.id, q="Acme")
    assert ids == expected[:300] and positions == list(range(len(ids)))
    assert resp.headers["X-Grid-Total"] == str(len(expected))


def test_bad_window_parameters_are_clear_errors(client, db, owner, seeded):
    workspace, user = owner
    login(client, user)
    base = f"/w/{workspace.slug}/tables/{seeded.id}"
    for params in (
        {"start": "-1"},
        {"start": "x"},
        {"limit": "0"},
        {"limit": "301"},
        {"q": "a" * 201},
        {"q": "a\x00b"},
    ):
        resp = client.get(f"{base}/rows", query_string=params)
        assert resp.status_code == 422, params
    assert client.get(f"{base}/rows", query_string={"view": "999999"}).status_code == 404
    assert client.get(f"{base}?view=abc").status_code == 404
    assert client.get(f"{base}/rows/999999999").status_code == 404


def test_row_panel_shows_every_field_escaped(client, db, owner):
    workspace, user = owner
    table = service.create_table(
        workspace,
        user,
        "People",
        columns=[
            {"name": "Name", "type": "text"},
            {"name": "Notes", "type": "long_text"},
            {"name": "Data", "type": "json"},
        ],
    )
    (row_id,) = service.insert_rows(
        workspace,
        user,
        table,
        [{"Name": "<script>alert(1)</script>", "Notes": "line one\nline two", "Data": '{"b": [1, 2], "a": "<i>"}'}],
    )
    login(client, user)
    body = client.get(f"/w/{workspace.slug}/tables/{table.id}/rows/{row_id}").get_data(as_text=True)
    assert "<script>alert(1)</script>" not in body
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in body
    assert "<pre>line one\nline two</pre>" in body
    assert "&#34;b&#34;: [\n    1,\n    2\n  ]" in body and "&lt;i&gt;" in body
    _, _, resp = _rows(client, workspace, table)
    window = resp.get_data(as_text=True)
    assert "<script>" not in window and "&lt;script&gt;alert(1)&lt;/script&gt;" in window


def test_window_reads_a_constant_number_of_statements(client, db, owner, seeded, query_budget):
    workspace, user = owner
    login(client, user)
    url = f"/w/{workspace.slug}/tables/{seeded.id}/rows"
    client.get(url, query_string={"limit": 1})  # warm the per-table-version caches
    counts = []
    for limit in (10, 300):
        with query_budget(2) as statements:  # membership with its user, workspace, table and view; window
            resp = client.get(url, query_string={"start": 200, "limit": limit})
        assert resp.get_data(as_text=True).count('class="grid-row"') == limit
        counts.append(len(statements))
    assert counts[0] == counts[1]


def test_window_checks_membership_role_table_and_view_in_its_one_statement(client, db, owner, stranger, seeded):
    workspace, user = owner
    other_workspace, other_user = stranger
    theirs = service.create_table(other_workspace, other_user, "Theirs", columns=[{"name": "A", "type": "text"}])
    their_view = service.list_views(other_workspace, theirs)[0]
    db.session.flush()
    base = f"/w/{workspace.slug}/tables/{seeded.id}/rows"
    login(client, _member(db, workspace, "billing_admin"))  # a member without tables.view
    assert client.get(base).status_code == 403
    login(client, _member(db, workspace, "viewer"))
    assert client.get(base, query_string={"limit": 3}).get_data(as_text=True).count('class="grid-row"') == 3
    assert client.get(f"/w/{workspace.slug}/tables/{theirs.id}/rows").status_code == 404
    assert client.get(base, query_string={"view": their_view.id}).status_code == 404
    assert client.get(base, query_string={"view": "x"}).status_code == 404
    assert client.get(f"/w/{workspace.slug}/tables/{seeded.id + 10**6}/rows").status_code == 404
    assert client.get(f"/w/{other_workspace.slug}/tables/{theirs.id}/rows").status_code == 404
    assert client.get(f"/w/no-such-workspace/tables/{seeded.id}/rows").status_code == 404
    login(client, user)
    # The owner's window still answers after another user's: the records belong to one request.
    assert client.get(base, query_string={"limit": 1}).status_code == 200


def test_window_rate_limit_headers_count_each_request(client, db, owner, seeded):
    workspace, user = owner
    login(client, user)
    url = f"/w/{workspace.slug}/tables/{seeded.id}/rows"
    began = time.time()
    seen = [client.get(url, query_string={"limit": 1}).headers for _ in range(3)]
    assert [h["X-RateLimit-Limit"] for h in seen] == ["1200"] * 3
    assert [h["X-RateLimit-Remaining"] for h in seen] == ["1199", "1198", "1197"]
    # The window started with the first request: it resets a minute later, the same for all three.
    assert len({h["X-RateLimit-Reset"] for h in seen}) == 1
    assert int(began) + 60 <= int(seen[0]["X-RateLimit-Reset"]) <= int(time.time()) + 61
    assert all(1 <= int(h["Retry-After"]) <= 61 for h in seen)


@pytest.mark.parametrize("change", ["ended_session", "disabled"])
def test_window_refuses_a_stale_session_or_a_disabled_member(client, db, owner, seeded, change):
    from morket.accounts.service import end_all_sessions
    from morket.core.db import utcnow

    workspace, user = owner
    login(client, user)
    url = f"/w/{workspace.slug}/tables/{seeded.id}/rows"
    assert client.get(url, headers={"HX-Request": "true"}).status_code == 200
    if change == "ended_session":
        end_all_sessions(user)
    else:
        user.disabled_at = utcnow()
    db.session.flush()
    db.session.expire_all()
    resp = client.get(url, headers={"HX-Request": "true"})
    assert resp.status_code in {302, 401}
    assert 'class="grid-row"' not in resp.get_data(as_text=True)


def test_cell_macro_and_window_render_the_same_cell(app, db, owner):
    workspace, user = owner
    table = service.create_table(
        workspace,
        user,
        "Typed",
        columns=[
            {"name": "Revenue", "type": "currency", "config": {"currency": "EUR"}},
            {"name": "Share", "type": "percent"},
            {"name": "Seen", "type": "checkbox"},
            {"name": "Tags", "type": "multi_select", "config": {"options": ["a", "b"]}},
        ],
    )
    service.insert_rows(
        workspace, user, table, [{"Revenue": "1234567.5", "Share": "12.50%", "Seen": "yes", "Tags": "a, b"}]
    )
    row = service.read_window(workspace, user, table, None, 0, 1)[0]
    macro = app.jinja_env.get_template("tables/_cell.html").module.render_cell
    cells = [str(macro(c, v)) for c, v in zip(table.live_columns, row.cells, strict=True)]
    assert 'data-raw="1234567.5"' in cells[0] and ">1,234,567.50 EUR</div>" in cells[0]
    assert 'data-raw="12.5"' in cells[1] and ">12.5%</div>" in cells[1]
    assert 'data-raw="true"' in cells[2] and ">✓</div>" in cells[2]
    assert 'data-raw="a, b"' in cells[3]
    errored = str(macro(table.live_columns[0], None, {"status": "error", "message": "Not a number"}))
    assert "is-error" in errored and 'title="Not a number"' in errored


def test_saving_a_view_sorts_filters_hides_and_shows_sorting_until_built(client, db, owner, seeded):
    workspace, user = owner
    col = {c.name: c for c in seeded.live_columns}
    default = service.list_views(workspace, seeded)[0]
    login(client, user)
    page = f"/w/{workspace.slug}/tables/{seeded.id}"
    token = csrf_token(client, page)
    form = {
        "csrf_token": token,
        "name": "Churned by size",
        "s_col": [str(col["Employees"].id), ""],
        "s_dir": ["desc", "asc"],
        "f_op": "and",
        "f_col": [str(col["Stage"].id), ""],
        "f_operator": ["any_of", "contains"],
        "f_value": ["Churned", ""],
        "shown": [str(col["Company"].id), str(col["Employees"].id), str(col["Stage"].id)],
        "frozen_count": "2",
        f"width_{col['Company'].id}": "240",
        "as_new": "1",
    }
    resp = client.post(f"{page}/views/{default.id}", data=form, headers={"HX-Request": "true"})
    assert resp.status_code == 204, resp.get_data(as_text=True)
    view = service.list_views(workspace, seeded)[-1]
    assert resp.headers["HX-Redirect"].endswith(f"/tables/{seeded.id}?view={view.id}")
    assert view.name == "Churned by size" and view.frozen_count == 2 and view.widths[str(col["Company"].id)] == 240
    assert set(view.hidden_column_ids) == {col["Founded"].id, col["Active"].id}
    html = client.get(f"{page}?view={view.id}").get_data(as_text=True)
    assert "Sorting…" in html and "frozen-ge-2" in html and 'data-width="240"' in html
    assert f'data-col-id="{col["Founded"].id}"' not in html
    emp, stage = col["Employees"].storage_name, col["Stage"].storage_name
    expected = _plain(
        db, f"SELECT id FROM ut.{seeded.storage_name} WHERE {stage} = 'Churned' ORDER BY {emp} DESC NULLS LAST, id"
    )
    ids, _, resp = _rows(client, workspace, seeded, start=0, limit=300, view=view.id)
    assert ids == expected[:300] and resp.headers["X-Grid-Total"] == str(len(expected))
    assert resp.get_data(as_text=True).count('class="grid-cell') == 3 * len(ids)
    assert "Sorting…" not in client.get(f"{page}?view={view.id}").get_data(as_text=True)
    # The default view is untouched, and the new one can be deleted (the first cannot).
    assert service.list_views(workspace, seeded)[0].sort == []
    assert client.post(f"{page}/views/{default.id}/delete", data={"csrf_token": token}).status_code == 422
    assert client.post(f"{page}/views/{view.id}/delete", data={"csrf_token": token}).status_code == 303
    assert [v.id for v in service.list_views(workspace, seeded)] == [default.id]


def test_a_bad_filter_is_explained_in_the_editor(client, db, owner, seeded):
    workspace, user = owner
    col = {c.name: c for c in seeded.live_columns}
    default = service.list_views(workspace, seeded)[0]
    login(client, user)
    page = f"/w/{workspace.slug}/tables/{seeded.id}"
    token = csrf_token(client, page)
    form = {"csrf_token": token, "name": "Default", "f_op": "and", "frozen_count": "1"}
    bad_operator = {**form, "f_col": str(col["Active"].id), "f_operator": "gt", "f_value": "3"}
    resp = client.post(f"{page}/views/{default.id}", data=bad_operator, headers={"HX-Request": "true"})
    assert resp.status_code == 422
    assert "does not apply to a checkbox column" in resp.get_data(as_text=True)
    bad_value = {**form, "f_col": str(col["Employees"].id), "f_operator": "gt", "f_value": "many"}
    body = client.post(f"{page}/views/{default.id}", data=bad_value).get_data(as_text=True)
    assert "Filter value" in body and 'value="many"' in body
    assert client.post(f"{page}/views/{default.id}", data={**form, "frozen_count": "x"}).status_code == 422
    assert service.list_views(workspace, seeded)[0].filters == {}


def test_viewer_reads_views_but_cannot_save_them(client, db, owner, seeded):
    workspace, _ = owner
    default = service.list_views(workspace, seeded)[0]
    login(client, _member(db, workspace, "viewer"))
    page = f"/w/{workspace.slug}/tables/{seeded.id}"
    html = client.get(page).get_data(as_text=True)
    assert "Save view" not in html and "ask an editor" in html
    token = csrf_token(client, "/w")
    resp = client.post(f"{page}/views/{default.id}", data={"csrf_token": token, "name": "Mine"})
    assert resp.status_code == 403
    assert service.list_views(workspace, seeded)[0].name == default.name


def test_grid_reads_use_the_grid_rate_limit(client, db, owner, seeded):
    workspace, user = owner
    login(client, user)
    base = f"/w/{workspace.slug}/tables/{seeded.id}"
    _, _, resp = _rows(client, workspace, seeded, limit=5)
    assert resp.headers["X-RateLimit-Limit"] == "1200"
    ids, _, _ = _rows(client, workspace, seeded, limit=1)
    assert client.get(f"{base}/rows/{ids[0]}").headers["X-RateLimit-Limit"] == "1200"
    statuses = {client.get(f"{base}/rows", query_string={"limit": 1}).status_code for _ in range(120)}
    assert statuses == {200}
