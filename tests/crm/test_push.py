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


def test_send_only_the_changes_of_a_preview(client, new_client, db, crm, hubspot):
    import re

    from morket.runs.models import Run
    from tests.factories import MembershipFactory, csrf_token, login

    workspace, owner, table, mapping = hubspot
    run_push(db, workspace, owner, table, "hubspot")
    edited = sorted(cells(db, table, mapping.record_id_column_id))[:4]
    for rid in edited:
        table_rows.update_cell(workspace, owner, table, rid, column(table, "Job title"), "Head of Growth")
    db.session.commit()
    page = f"/w/{workspace.slug}/tables/{table.id}/crm/hubspot"
    token = csrf_token(client, page)
    fragment = client.post(f"{page}/preview", data={"scope": "all"}, headers={"X-CSRFToken": token})
    html = fragment.get_data(as_text=True)
    assert "Send only the 4 changes" in html and f"the {ROWS - 4} unchanged records are not sent" in html
    changes = re.search(r'name="changes" value="([^"]+)"', html).group(1)

    # Someone else (even in the same workspace) cannot replay this preview's rows.
    member = MembershipFactory(workspace=workspace, role="member").user
    other = new_client()
    login(other, member)
    refused = other.post(f"{page}/push", data={"scope": "all", "changes": changes},
                         headers={"X-CSRFToken": csrf_token(other, page)})  # fmt: skip
    assert "That preview expired" in other.get(refused.headers["Location"]).get_data(as_text=True)
    pushes_before = db.session.query(Run).filter_by(table_id=table.id).count()

    resp = client.post(f"{page}/push", data={"scope": "all", "changes": changes}, headers={"X-CSRFToken": token})
    assert "Push started: 4 rows (only the changes)" in client.get(resp.headers["Location"]).get_data(as_text=True)
    run = db.session.query(Run).filter_by(table_id=table.id).order_by(Run.id.desc()).first()
    assert db.session.query(Run).filter_by(table_id=table.id).count() == pushes_before + 1
    assert run.total == 4
    from morket.crm.push_executor import work

    work(run.id, 0, budget=30)
    db.session.expire_all()
    progress = push.progress(db.session.get(Run, run.id))
    assert (progress["created"], progress["updated"], progress["failed"]) == (0, 4, 0)
    assert crm.state("hubspot")["records"]["contacts"] == ROWS

    # A made-up or expired token starts nothing.
    resp = client.post(f"{page}/push", data={"scope": "all", "changes": "nope"}, headers={"X-CSRFToken": token})
    assert "That preview expired" in client.get(resp.headers["Location"]).get_data(as_text=True)
    assert db.session.query(Run).filter_by(table_id=table.id).count() == pushes_before + 1
