"""Saving an enrichment column's setup says so, and the grid's Undo puts the setup back (and Redo again).

The drawer's save lands on the grid with a toast offering Undo; one undo restores the steps, inputs and
name together, a field added as a new column is a step of its own beneath it, and a setup someone else
changed since is not overwritten.
"""

from __future__ import annotations

import re

from morket.enrichment import columns, panel_service
from morket.enrichment.schemas import ColumnSetup
from morket.extensions import db as _db
from morket.tables import service as tables
from morket.tables import undo
from morket.workspaces.models import Membership
from tests.enrichment.test_panel_edit import _fields, _html, _steps, _waterfall, leads  # noqa: F401
from tests.factories import UserFactory, csrf_token, login


def _edit_url(workspace, table, column) -> str:
    return f"/w/{workspace.slug}/tables/{table.id}/enrichment/{column.id}/panel/edit"


def _grid(workspace, table) -> str:
    return f"/w/{workspace.slug}/tables/{table.id}"


def _toasts(client, workspace, table) -> str:
    page = client.get(_grid(workspace, table)).get_data(as_text=True)
    return page[page.index('id="toasts"') : page.index('id="toast-template"')]


def _step(client, workspace, table, verb: str) -> dict:
    token = csrf_token(client, _grid(workspace, table))
    resp = client.post(f"{_grid(workspace, table)}/{verb}", data={"csrf_token": token})
    return {"status": resp.status_code, **(resp.get_json() or {})}


def _reload(workspace, table, column):
    _db.session.expire_all()
    table = tables.get_table_or_404(workspace, table.id)
    return table, columns.get_enrichment_column_or_404(workspace, table, column.id)


def _operations(column) -> list[str]:
    return [s.operation for s in columns.column_config(column).steps]


def test_a_saved_setup_is_confirmed_with_undo_and_undo_then_redo_swap_it_back(client, leads):  # noqa: F811
    workspace, owner, table, ids = leads
    column = _waterfall(workspace, owner, table, ids)
    row_id = tables.read_window(workspace, owner, table, None, 0, 1)[0].id
    tables.write_cells(workspace, table, {row_id: {column.id: {"value": "ada@acct0.example.com"}}})
    _db.session.commit()
    login(client, owner)
    url = _edit_url(workspace, table, column)
    moved = client.post(url, data={**_fields(_html(client.get(url))), "step_action": "down:1"})
    fields = {**_fields(_html(moved)), "name": "Email (Apollo first)"}
    assert _steps(_html(moved)) == ["apollo.people_match", "hunter.email_finder"]

    saved = client.post(url, data=fields, headers={"HX-Request": "true"})
    assert saved.status_code == 204
    toast = _toasts(client, workspace, table)
    assert "Saved “Email (Apollo first)”" in toast and ">Undo</button>" in toast

    undone = _step(client, workspace, table, "undo")
    assert undone["status"] == 200
    assert undone["data"]["message"] == "Undid the enrichment setup change." and undone["data"]["reload"] is True
    table, column = _reload(workspace, table, column)
    assert column.name == "Work email"
    assert _operations(column) == ["hunter.email_finder", "apollo.people_match"]
    row = tables.get_row(workspace, owner, table, row_id)
    assert (row.values(table).get(column.id) or {}).get("value") == "ada@acct0.example.com"

    redone = _step(client, workspace, table, "redo")
    assert redone["status"] == 200 and redone["data"]["message"] == "Redid the enrichment setup change."
    table, column = _reload(workspace, table, column)
    assert column.name == "Email (Apollo first)"
    assert _operations(column) == ["apollo.people_match", "hunter.email_finder"]


def test_a_save_that_changes_nothing_says_so_and_leaves_nothing_to_undo(client, leads):  # noqa: F811
    workspace, owner, table, ids = leads
    column = _waterfall(workspace, owner, table, ids)
    # A column that means "company name": the saved setup leaves Apollo's company input unmapped, and
    # the editor shows it so (no guess that a save would then write).
    tables.add_column(workspace, owner, table, "Company", "text")
    _db.session.commit()
    login(client, owner)
    url = _edit_url(workspace, table, column)
    depth = undo.undo_depth(workspace, owner, table)
    html = _html(client.get(url))
    company = re.search(r'<select name="in_organization_name"[^>]*>(.*?)</select>', html, re.S)
    assert company is not None and " selected" not in company.group(1)
    saved = client.post(url, data=_fields(html), headers={"HX-Request": "true"})
    assert saved.status_code == 204
    toast = _toasts(client, workspace, table)
    assert "Nothing changed in “Work email”." in toast and "data-toast-undo" not in toast
    table, column = _reload(workspace, table, column)
    assert undo.undo_depth(workspace, owner, table) == depth
    # The last step is still the column's creation.
    assert _step(client, workspace, table, "undo")["data"]["message"] == "Undid the column change."


def test_a_field_added_as_a_column_is_undone_after_the_setup_that_fills_it(client, leads):  # noqa: F811
    workspace, owner, table, ids = leads
    column = _waterfall(workspace, owner, table, ids)
    column = panel_service.add_output_column(workspace, owner, table, column, "linkedin_url")
    _db.session.commit()
    table, column = _reload(workspace, table, column)
    added = next(o.column_id for o in columns.column_config(column).outputs if o.field == "linkedin_url")
    login(client, owner)

    assert _step(client, workspace, table, "undo")["data"]["message"] == "Undid the enrichment setup change."
    table, column = _reload(workspace, table, column)
    assert columns.column_config(column).outputs == []
    assert added in {c.id for c in table.live_columns}  # the column itself is the next step down

    assert _step(client, workspace, table, "undo")["data"]["message"] == "Undid the column change."
    table, column = _reload(workspace, table, column)
    assert added not in {c.id for c in table.live_columns}


def test_undo_keeps_a_setup_someone_else_changed_since(client, leads):  # noqa: F811
    workspace, owner, table, ids = leads
    column = _waterfall(workspace, owner, table, ids)
    editor = UserFactory()
    _db.session.add(Membership(workspace_id=workspace.id, user_id=editor.id, role="member"))
    _db.session.commit()
    login(client, owner)
    url = _edit_url(workspace, table, column)
    fields = _fields(_html(client.get(url)))
    assert client.post(url, data={**fields, "name": "Mine"}, headers={"HX-Request": "true"}).status_code == 204

    # Someone else then reorders the steps.
    table, column = _reload(workspace, table, column)
    setup = columns.setup_of(column)
    setup["steps"] = list(reversed(setup["steps"]))
    columns.update_enrichment_column(workspace, editor, table, column.id, ColumnSetup.model_validate(setup))
    _db.session.commit()

    undone = _step(client, workspace, table, "undo")
    assert undone["status"] == 409
    assert "changed that column's enrichment setup since" in undone["error"]["message"]
    table, column = _reload(workspace, table, column)
    assert column.name == "Mine" and _operations(column) == ["apollo.people_match", "hunter.email_finder"]


def test_the_full_page_editor_saves_with_the_same_undo(client, leads):  # noqa: F811
    workspace, owner, table, ids = leads
    column = _waterfall(workspace, owner, table, ids)
    _db.session.commit()
    login(client, owner)
    page = f"/w/{workspace.slug}/tables/{table.id}/enrichment/{column.id}"
    fields = {**_fields(_html(client.get(page))), "name": "Emails", "csrf_token": csrf_token(client, page)}
    saved = client.post(page, data=fields)
    assert saved.status_code == 303 and f"/tables/{table.id}" in saved.headers["Location"]
    toast = _toasts(client, workspace, table)
    assert "Saved “Emails”" in toast and ">Undo</button>" in toast
    assert _step(client, workspace, table, "undo")["data"]["message"] == "Undid the enrichment setup change."
    table, column = _reload(workspace, table, column)
    assert column.name == "Work email"
