"""Bulk edits: find and replace within a column and delete rows by filter, each previewed and undoable."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from morket.core.errors import ValidationFailed
from morket.core.roles import VIEWER
from morket.dataops import bulk
from morket.extensions import db as database
from morket.tables import service as tables
from morket.tables import storage, undo
from tests.factories import MembershipFactory, csrf_token, login


@pytest.fixture
def leads(db, owner):
    workspace, user = owner
    table = tables.create_table(
        workspace,
        user,
        "Leads",
        columns=[
            {"name": "Company", "type": "text"},
            {"name": "Email", "type": "email"},
            {"name": "Seats", "type": "number"},
        ],
    )
    ids = tables.insert_rows(
        workspace,
        user,
        table,
        [
            {"Company": "Acme Inc", "Email": "ann@acme.com", "Seats": 5},
            {"Company": "ACME inc", "Email": "bob@beta.io", "Seats": 50},
            {"Company": "Beta acme", "Email": "cy@acme.com", "Seats": 7},
            {"Company": "Gamma", "Email": None, "Seats": None},
        ],
    )
    return workspace, user, table, ids


def _rows(table) -> list[tuple]:
    store = storage.storage_for(table)
    query = sa.select(store.rows.c.id, *store.columns.values()).order_by(store.rows.c.pos)
    return [tuple(r) for r in database.session.execute(query)]


def _column(table, name: str) -> int:
    return next(c.id for c in table.live_columns if c.name == name)


@pytest.mark.parametrize(
    ("find", "replace", "options", "companies"),
    [
        ("acme", "Apex", {}, ["Apex Inc", "Apex inc", "Beta Apex", "Gamma"]),
        ("acme", "Apex", {"match_case": True}, ["Acme Inc", "ACME inc", "Beta Apex", "Gamma"]),
        ("acme inc", "Acme", {"whole_cell": True}, ["Acme", "Acme", "Beta acme", "Gamma"]),
        ("Acme Inc", "Acme", {"whole_cell": True, "match_case": True}, ["Acme", "ACME inc", "Beta acme", "Gamma"]),
        ("%", "x", {}, ["Acme Inc", "ACME inc", "Beta acme", "Gamma"]),
        (" ", "", {}, ["AcmeInc", "ACMEinc", "Betaacme", "Gamma"]),
    ],
)
def test_find_and_replace_previews_then_replaces_and_undo_restores(db, leads, find, replace, options, companies):
    workspace, user, table, _ = leads
    before = _rows(table)
    company = _column(table, "Company")
    changed = sum(a != b for a, b in zip([r[1] for r in before], companies, strict=True))

    preview = bulk.replace_in_column(workspace, user, table, company, find, replace, preview=True, **options)
    assert preview.changed == changed
    assert _rows(table) == before

    done = bulk.replace_in_column(workspace, user, table, company, find, replace, **options)
    assert done.changed == changed
    assert [r[1] for r in _rows(table)] == companies
    if changed:
        undo.undo_last(workspace, user, table)
    assert _rows(table) == before


def test_replace_refuses_values_the_column_cannot_hold_and_changes_nothing(db, leads):
    workspace, user, table, _ = leads
    before = _rows(table)
    email = _column(table, "Email")
    preview = bulk.replace_in_column(workspace, user, table, email, "@acme.com", "", preview=True)
    assert (preview.changed, preview.refused) == (0, 2)
    assert "not an email address" in preview.first_problem
    bulk.replace_in_column(workspace, user, table, email, "@acme.com", "@apex.io")
    assert [r[2] for r in _rows(table)] == ["ann@apex.io", "bob@beta.io", "cy@apex.io", None]
    with pytest.raises(ValidationFailed, match="would not fit"):
        bulk.replace_in_column(workspace, user, table, email, "@apex.io", "")
    with pytest.raises(ValidationFailed, match="text columns"):
        bulk.replace_in_column(workspace, user, table, _column(table, "Seats"), "5", "6")
    with pytest.raises(ValidationFailed, match="1 to 1,000 characters to find"):
        bulk.replace_in_column(workspace, user, table, email, "", "x")
    undo.undo_last(workspace, user, table)
    assert _rows(table) == before


def test_delete_by_filter_counts_deletes_and_undo_puts_rows_back_in_place(db, leads):
    workspace, user, table, ids = leads
    before = _rows(table)
    company = _column(table, "Company")
    seats = _column(table, "Seats")
    filters = {"op": "and", "conditions": [{"column_id": company, "operator": "contains", "value": "acme"}]}
    assert bulk.count_matching_rows(workspace, user, table, filters) == 3
    narrower = {"op": "and", "conditions": [filters, {"column_id": seats, "operator": "lt", "value": "10"}]}
    assert bulk.count_matching_rows(workspace, user, table, narrower) == 2

    assert bulk.delete_matching_rows(workspace, user, table, narrower) == 2
    assert [r[0] for r in _rows(table)] == [ids[1], ids[3]]
    assert table.row_count == 2
    undo.undo_last(workspace, user, table)
    assert _rows(table) == before
    assert [r.id for r in tables.read_window(workspace, user, table, None, 0, 10)] == ids

    with pytest.raises(ValidationFailed, match="Add a condition"):
        bulk.delete_matching_rows(workspace, user, table, {"op": "and", "conditions": []})
    with pytest.raises(ValidationFailed, match="does not apply"):
        bulk.count_matching_rows(
            workspace, user, table, {"conditions": [{"column_id": seats, "operator": "contains", "value": "x"}]}
        )
    assert _rows(table) == before


def test_pages_preview_then_apply(client, db, leads):
    workspace, user, table, ids = leads
    login(client, user)
    url = f"/w/{workspace.slug}/tables/{table.id}/bulk"
    token = csrf_token(client, url)
    company = _column(table, "Company")

    resp = client.post(
        f"{url}/replace", data={"csrf_token": token, "column": company, "find": "acme", "replace": "Apex"}
    )
    body = resp.get_data(as_text=True)
    assert resp.status_code == 200 and "3 cells</strong> will change" in body and "Replace 3 cells" in body
    resp = client.post(
        f"{url}/replace",
        data={"csrf_token": token, "column": company, "find": "acme", "replace": "Apex", "action": "apply"},
    )
    assert resp.status_code == 302
    assert "Replaced 3 cells" in client.get(resp.headers["Location"]).get_data(as_text=True)

    form = {"csrf_token": token, "column": company, "operator": "equals", "value": "gamma"}
    body = client.post(f"{url}/delete", data=form).get_data(as_text=True)
    assert "1 row</strong> match" in body and 'id="bulk-delete-confirm"' in body and "data-confirm" in body
    resp = client.post(f"{url}/delete", data={**form, "action": "apply"})
    assert resp.status_code == 302
    assert [r[0] for r in _rows(table)] == ids[:3]
    assert undo.undo_depth(workspace, user, table) == (2, 0)

    resp = client.post(f"{url}/delete", data={"csrf_token": token, "column": "", "action": "apply"})
    assert resp.status_code == 422 and "Add a condition" in resp.get_data(as_text=True)
    resp = client.post(f"{url}/replace", data={"csrf_token": token, "column": "abc", "find": "x"})
    assert resp.status_code == 422 and "Pick a column" in resp.get_data(as_text=True)


def test_viewers_get_403_and_other_workspaces_404(client, new_client, db, leads, stranger):
    workspace, user, table, _ = leads
    before = _rows(table)
    viewer = MembershipFactory(workspace=workspace, role=VIEWER).user
    login(client, viewer)
    url = f"/w/{workspace.slug}/tables/{table.id}/bulk"
    assert client.get(url).status_code == 403
    token = csrf_token(client, f"/w/{workspace.slug}/imports")
    form = {"csrf_token": token, "column": _column(table, "Company"), "operator": "is_not_empty", "action": "apply"}
    assert client.post(f"{url}/delete", data=form).status_code == 403

    other_workspace, other_owner = stranger
    outsider = new_client()
    login(outsider, other_owner)
    token = csrf_token(outsider, f"/w/{other_workspace.slug}/imports")
    for path in (url, f"/w/{other_workspace.slug}/tables/{table.id}/bulk"):
        assert outsider.get(path).status_code == 404
        assert outsider.post(f"{path}/delete", data={**form, "csrf_token": token}).status_code == 404
        assert outsider.post(f"{path}/replace", data={"csrf_token": token, "find": "a"}).status_code == 404
    assert _rows(table) == before


def test_a_page_write_on_a_table_whose_rows_were_dropped_underneath_is_a_404(client, db, leads):
    """What a concurrent delete leaves a reader without the lock: the rows table gone. A 404 page, not a 500."""
    workspace, user, table, _ = leads
    login(client, user)
    url = f"/w/{workspace.slug}/tables/{table.id}/bulk"
    token = csrf_token(client, url)
    company = _column(table, "Company")
    database.session.execute(sa.text(f"DROP TABLE ut.{table.storage_name}"))
    resp = client.post(f"{url}/replace", data={"csrf_token": token, "column": company, "find": "acme", "replace": "x"})
    assert resp.status_code == 404 and "Not found" in resp.get_data(as_text=True)
    resp = client.post(
        f"/w/{workspace.slug}/tables/{table.id}/dedupe",
        data={"csrf_token": token, "col": company, f"match_{company}": "text", "keep": "first"},
    )
    assert resp.status_code == 404 and "Not found" in resp.get_data(as_text=True)
