"""Pushing a table to HubSpot and Salesforce: mapping, preview, push by key, no duplicates, per-row errors."""

from __future__ import annotations

import pytest

from morket.core.errors import ValidationFailed
from morket.crm import mapping as mappings
from morket.crm import push, service
from morket.tables import rows as table_rows
from tests.crm.push_support import cells, column, run_push, save, setup

ROWS = 300


@pytest.fixture
def hubspot(client, db, crm):
    workspace, owner, table = setup(client, db, crm, "hubspot", ROWS)
    payload = {
        "object": "contacts",
        "key_field": "email",
        "key_column_id": column(table, "Email"),
        "fields": [
            {"column_id": column(table, "First name"), "field": "firstname"},
            {"column_id": column(table, "Last name"), "field": "lastname"},
            {"column_id": column(table, "Company"), "field": "company"},
            {"column_id": column(table, "Job title"), "field": "jobtitle"},
            {"column_id": column(table, "Employees"), "field": "num_employees"},
        ],
    }
    mapping, plan = save(workspace, owner, table, "hubspot", payload)
    db.session.commit()
    return workspace, owner, table, mapping


def test_suggested_mapping_by_name(client, db, crm):
    workspace, _, table = setup(client, db, crm, "hubspot", 1)
    objects = service.describe_objects(workspace, "hubspot")
    plan = mappings.mapping_for_form(workspace, table, "hubspot", objects)
    assert not plan.saved
    assert plan.object == "contacts" and plan.key_field == "email"
    assert plan.key_column_id == column(table, "Email")
    suggested = {p["field"]: p["column_id"] for p in plan.fields}
    assert suggested["firstname"] == column(table, "First name")
    assert suggested["lastname"] == column(table, "Last name")
    assert suggested["jobtitle"] == column(table, "Job title")
    assert suggested["company"] == column(table, "Company")


def test_type_checks(client, db, crm):
    workspace, owner, table = setup(client, db, crm, "hubspot", 1)
    base = {"object": "contacts", "key_field": "email", "key_column_id": column(table, "Email")}
    # text into a number field: a warning, saved
    _, plan = save(workspace, owner, table, "hubspot",
                   {**base, "fields": [{"column_id": column(table, "Company"), "field": "num_employees"}]})  # fmt: skip
    assert [c["level"] for c in plan.checks] == ["warn"]
    # a number column as the email key: refused, with a reason
    with pytest.raises(ValidationFailed, match="email"):
        save(workspace, owner, table, "hubspot", {**base, "key_column_id": column(table, "Employees"), "fields": []})
    # a key that is not unique: refused
    with pytest.raises(ValidationFailed, match="match key"):
        save(workspace, owner, table, "hubspot", {**base, "key_field": "firstname", "fields": []})
    # the record-id column was created on the first save
    assert any(c.name == "HubSpot ID" and c.type == "text" for c in table.live_columns)


def test_preview_push_then_edit_and_push_again(client, db, crm, hubspot):
    workspace, owner, table, mapping = hubspot
    first = push.preview(workspace, table, "hubspot", scope="all")
    assert (first.create, first.update, first.unchanged) == (ROWS, 0, 0)
    assert first.calls == 3  # batched reads: 100 keys a call

    run = run_push(db, workspace, owner, table, "hubspot")
    assert run.status == "completed", run.pause_reason
    progress = push.progress(run)
    assert (progress["created"], progress["updated"], progress["failed"]) == (ROWS, 0, 0)
    state = crm.state("hubspot")
    assert state["records"]["contacts"] == ROWS
    ids = cells(db, table, mapping.record_id_column_id)
    assert len({v for v, _ in ids.values()}) == ROWS and all(v for v, _ in ids.values())
    assert all(s[str(mapping.record_id_column_id)]["status"] == "success" for _, s in ids.values())

    # Edit 10 rows: the preview shows exactly those as updates, with the fields that differ.
    row_ids = sorted(ids)[:10]
    title = column(table, "Job title")
    for rid in row_ids:
        table_rows.update_cell(workspace, owner, table, rid, title, "Chief Revenue Officer")
    db.session.commit()
    second = push.preview(workspace, table, "hubspot", scope="all")
    assert (second.create, second.update, second.unchanged) == (0, 10, ROWS - 10)
    assert {d["row_id"] for d in second.differences} == set(row_ids)
    assert all(d["fields"][0]["field"] == "jobtitle" for d in second.differences)

    again = run_push(db, workspace, owner, table, "hubspot")
    progress = push.progress(again)
    assert (progress["created"], progress["updated"]) == (0, ROWS)
    assert crm.state("hubspot")["records"]["contacts"] == ROWS  # never a duplicate
    assert cells(db, table, mapping.record_id_column_id) == {
        rid: (value, cells(db, table, mapping.record_id_column_id)[rid][1]) for rid, (value, _) in ids.items()
    }
    third = push.preview(workspace, table, "hubspot", scope="all")
    assert (third.create, third.update, third.unchanged) == (0, 0, ROWS)
