"""A push under trouble: the token expires mid-push, a 429 storm, a refused record, Salesforce by external id."""

from __future__ import annotations

from morket.crm import push
from morket.crm.push_executor import work
from morket.runs.models import Run
from morket.tables import rows as table_rows
from morket.tables import service as tables
from tests.crm.push_support import cells, column, run_push, save, setup

FIELDS = ("First name", "firstname"), ("Last name", "lastname"), ("Job title", "jobtitle")


def _hubspot_mapping(workspace, owner, table):
    payload = {"object": "contacts", "key_field": "email", "key_column_id": column(table, "Email"),
               "fields": [{"column_id": column(table, c), "field": f} for c, f in FIELDS]}  # fmt: skip
    mapping, _ = save(workspace, owner, table, "hubspot", payload)
    return mapping


def _all_pushed(db, crm, table, mapping, rows: int) -> None:
    assert crm.state("hubspot")["records"]["contacts"] == rows
    ids = [value for value, _ in cells(db, table, mapping.record_id_column_id).values()]
    assert len(ids) == rows and all(ids) and len(set(ids)) == rows  # none lost, none duplicated


def test_token_expires_mid_push_is_refreshed_once(client, db, crm):
    workspace, owner, table = setup(client, db, crm, "hubspot", 800)
    mapping = _hubspot_mapping(workspace, owner, table)
    run = push.start_push(workspace, owner, table, "hubspot", scope="all")
    db.session.commit()
    for _ in range(20):  # the first batches go out (a short budget: the job stops after a batch or two)
        work(run.id, 0, budget=0.2)
        if crm.state("hubspot")["records"]["contacts"]:
            break
    assert 0 < crm.state("hubspot")["records"]["contacts"] < 800
    refreshes = crm.state("hubspot")["grants"].get("refresh_token", 0)
    assert crm.expire("hubspot") >= 1  # every session ends at the CRM
    work(run.id, 0, budget=30)
    db.session.expire_all()
    run = db.session.get(Run, run.id)
    assert run.status == "completed" and run.failed == 0
    assert crm.state("hubspot")["grants"].get("refresh_token", 0) == refreshes + 1
    _all_pushed(db, crm, table, mapping, 800)


def test_a_429_storm_loses_and_duplicates_nothing(client, db, crm, app):
    workspace, owner, table = setup(client, db, crm, "hubspot", 500)
    mapping = _hubspot_mapping(workspace, owner, table)
    db.session.commit()
    crm.configure("hubspot", window_limit=3)  # three calls per ten seconds
    # Start from a wrong idea of the limit, so the first calls run into 429s.
    app.extensions["morket_redis"].set(f"morket:crm-rate:{mapping_connection(workspace)}", "1000")
    run = run_push(db, workspace, owner, table, "hubspot")
    assert run.status == "completed" and run.failed == 0, run.pause_reason
    _all_pushed(db, crm, table, mapping, 500)


def mapping_connection(workspace) -> int:
    from morket.crm import service

    return service.get_connection(workspace, "hubspot").id


def test_the_crms_own_error_is_on_the_rows_cell(client, db, crm):
    workspace, owner, table = setup(client, db, crm, "hubspot", 0)
    sheet = tables.create_table(workspace, owner, "Typed by hand", columns=[{"name": "Work email", "type": "text"},
                                                                          {"name": "First name"}])  # fmt: skip
    emails = ["ann@acme.io", "bob@acme.io", "not-an-email", "cy@acme.io"]
    ids = table_rows.insert_rows(workspace, owner, sheet, [{"Work email": e, "First name": e[:3]} for e in emails])
    payload = {"object": "contacts", "key_field": "email", "key_column_id": column(sheet, "Work email"),
               "fields": [{"column_id": column(sheet, "First name"), "field": "firstname"}]}  # fmt: skip
    mapping, _ = save(workspace, owner, sheet, "hubspot", payload)
    run = run_push(db, workspace, owner, sheet, "hubspot")
    assert (run.status, run.succeeded, run.failed) == ("completed", 3, 1)
    found = cells(db, sheet, mapping.record_id_column_id)
    value, state = found[ids[2]]
    assert value is None
    cell = state[str(mapping.record_id_column_id)]
    assert cell["status"] == "error"
    assert "INVALID_EMAIL" in cell["message"] and "not-an-email is invalid" in cell["message"]
    assert all(found[i][0] for i in (ids[0], ids[1], ids[3]))
    assert crm.state("hubspot")["records"]["contacts"] == 3


def test_salesforce_by_external_id_updates_and_never_creates_twice(client, db, crm):
    workspace, owner, table = setup(client, db, crm, "salesforce", 250)
    first_row = min(cells(db, table, column(table, "Email")))
    table_rows.update_cell(workspace, owner, table, first_row, column(table, "Last name"), None)
    payload = {"object": "Contact", "key_field": "Morket_Id__c", "key_column_id": 0,
               "fields": [{"column_id": column(table, c), "field": f}
                          for c, f in (("First name", "FirstName"), ("Last name", "LastName"), ("Email", "Email"),
                                       ("Job title", "Title"))]}  # fmt: skip
    mapping, _ = save(workspace, owner, table, "salesforce", payload)
    assert any(c.name == "Salesforce ID" for c in table.live_columns)
    db.session.commit()
    preview = push.preview(workspace, table, "salesforce", scope="all")
    assert (preview.create, preview.update, preview.unchanged, preview.calls) == (250, 0, 0, 2)

    run = run_push(db, workspace, owner, table, "salesforce")
    assert (run.status, run.succeeded, run.failed) == ("completed", 249, 1)
    state = cells(db, table, mapping.record_id_column_id)[first_row][1][str(mapping.record_id_column_id)]
    assert state["status"] == "error" and state["message"].startswith("REQUIRED_FIELD_MISSING")
    assert crm.state("salesforce")["records"]["Contact"] == 249

    rows = sorted(cells(db, table, column(table, "Email")))[1:6]
    for rid in rows:
        table_rows.update_cell(workspace, owner, table, rid, column(table, "Job title"), "Head of RevOps")
    db.session.commit()
    preview = push.preview(workspace, table, "salesforce", scope="all")
    assert (preview.create, preview.update, preview.unchanged) == (1, 5, 244)
    assert {d["row_id"] for d in preview.differences} == set(rows)
    again = run_push(db, workspace, owner, table, "salesforce", scope="selected", row_ids=rows)
    progress = push.progress(again)
    assert (progress["created"], progress["updated"], progress["failed"]) == (0, 5, 0)
    assert crm.state("salesforce")["records"]["Contact"] == 249
