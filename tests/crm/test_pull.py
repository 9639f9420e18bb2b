"""Pulling HubSpot lists and Salesforce queries into tables, against the CRM sandboxes."""

from __future__ import annotations

import time

import pytest
from flask import current_app
from sqlalchemy import text

from morket.core.errors import MorketError, NotFound
from morket.crm import pull, pull_read, service
from morket.crm.client import CrmClient
from morket.crm.pull_models import CrmPull, CrmPullSource
from morket.tables import storage
from morket.tables.models import Table
from tests.crm.conftest import connect
from tests.factories import login, workspace_with_owner


@pytest.fixture
def owner(client, db):
    workspace, user = workspace_with_owner(name="Pull Co")
    db.session.flush()
    login(client, user)
    return workspace, user, client


def seed(crm, provider: str, **body) -> dict:
    return crm.http.post(f"{crm.base}/_sandbox/{provider}/seed", json=body).raise_for_status().json()


def touch(crm, provider: str, **body) -> dict:
    return crm.http.post(f"{crm.base}/_sandbox/{provider}/touch", json=body).raise_for_status().json()


def served(crm, provider: str) -> int:
    return crm.http.get(f"{crm.base}/_sandbox/{provider}/served").raise_for_status().json()["records"]


def contacts(n: int, start: int = 0) -> list[dict]:
    return [
        {"email": f"person{i}@example.com", "firstname": f"First{i}", "lastname": f"Last{i}",
         "num_employees": str(10 + i)}
        for i in range(start, start + n)
    ]  # fmt: skip


def table_rows(db, table_id: int) -> list[dict]:
    db.session.expire_all()
    table = db.session.get(Table, table_id)
    names = {c.storage_name: c.name for c in table.live_columns}
    relation = storage.storage_for(table).rows.fullname
    rows = db.session.execute(text(f"SELECT * FROM {relation} ORDER BY id")).mappings().all()  # noqa: S608
    return [{names[k]: v for k, v in row.items() if k in names} for row in rows]


def latest(db, source_id: int) -> CrmPull:
    db.session.expire_all()
    return db.session.query(CrmPull).filter_by(source_id=source_id).order_by(CrmPull.id.desc()).first()


def test_hubspot_list_into_a_new_table_then_only_the_changed_records(owner, crm, db, run_jobs):
    workspace, user, client = owner
    connect(client, crm, workspace.slug, "hubspot")
    made = seed(crm, "hubspot", object="contacts", records=contacts(250), list="Webinar leads")
    seed(crm, "hubspot", object="contacts", records=contacts(30, start=500))  # not in the list
    source = pull.create_source(
        workspace, user, "hubspot", "list", {"list_id": made["list_id"],
                                             "fields": ["email", "firstname", "lastname", "num_employees"]}
    )  # fmt: skip
    table = db.session.get(Table, source.table_id)
    assert table.name == "HubSpot list Webinar leads"
    assert [c.name for c in table.live_columns] == ["HubSpot ID", "Email", "First name", "Last name", "Employees"]
    assert [c.type for c in table.live_columns] == ["text", "email", "text", "text", "number"]
    pull.start_pull(workspace, user, source)
    db.session.flush()
    before = served(crm, "hubspot")
    run_jobs()
    first = latest(db, source.id)
    assert first.status == "done", first.error
    assert (first.rows_read, first.inserted, first.updated) == (250, 250, 0)
    assert served(crm, "hubspot") - before == 250
    rows = table_rows(db, table.id)
    assert len(rows) == 250 and {r["Email"] for r in rows} == {f"person{i}@example.com" for i in range(250)}
    assert rows[0]["Employees"] == 10

    changed = made["ids"][:5]
    touch(crm, "hubspot", object="contacts", ids=changed, properties={"firstname": "Changed"})
    touch(crm, "hubspot", object="contacts", ids=[], properties={})
    db.session.expire_all()
    source = db.session.get(CrmPullSource, source.id)
    assert source.high_water
    pull.start_pull(workspace, user, source)
    db.session.flush()
    before = served(crm, "hubspot")
    run_jobs()
    second = latest(db, source.id)
    assert second.status == "done", second.error
    assert (second.rows_read, second.inserted, second.updated) == (5, 0, 5)
    assert served(crm, "hubspot") - before == 5
    rows = table_rows(db, table.id)
    assert len(rows) == 250
    assert sorted(r["HubSpot ID"] for r in rows if r["First name"] == "Changed") == sorted(changed)


def test_members_added_to_a_list_after_their_records_changed_are_not_read_again(owner, crm, db, run_jobs):
    """A contact made on Monday and put on the list on Tuesday: the first pull reads it, the second
    (nothing changed since) reads nothing. The high-water mark covers the list's own stamps."""
    workspace, user, client = owner
    connect(client, crm, workspace.slug, "hubspot")
    ids = seed(crm, "hubspot", object="contacts", records=contacts(40))["ids"]
    time.sleep(0.05)  # the records' last change is now well before they join the list
    made = seed(crm, "hubspot", object="contacts", records=[], list="Joined later", members=ids)
    source = pull.create_source(workspace, user, "hubspot", "list", {"list_id": made["list_id"], "fields": ["email"]})
    pull.start_pull(workspace, user, source)
    db.session.flush()
    run_jobs()
    assert (latest(db, source.id).rows_read, latest(db, source.id).inserted) == (40, 40)
    source = db.session.get(CrmPullSource, source.id)
    pull.start_pull(workspace, user, source)
    db.session.flush()
    before = served(crm, "hubspot")
    run_jobs()
    second = latest(db, source.id)
    assert second.status == "done", second.error
    assert (second.rows_read, second.inserted, second.updated) == (0, 0, 0)
    assert served(crm, "hubspot") - before == 0
    # a member added after that pull is read by the next one, and only it
    extra = seed(crm, "hubspot", object="contacts", records=contacts(1, start=900))["ids"]
    connection = service.get_connection(workspace, "hubspot")
    with CrmClient(connection.id, current_app.config["MORKET"]) as hubspot:
        hubspot.request("PUT", f"/crm/v3/lists/{made['list_id']}/memberships/add", json=extra).raise_for_status()
    pull.start_pull(workspace, user, db.session.get(CrmPullSource, source.id))
    db.session.flush()
    run_jobs()
    third = latest(db, source.id)
    assert (third.rows_read, third.inserted) == (1, 1), third.error


def _hubspot_list_source(crm, workspace, user, n: int = 250):
    made = seed(crm, "hubspot", object="contacts", records=contacts(n), list="Leads")
    return made, pull.create_source(workspace, user, "hubspot", "list", {"list_id": made["list_id"],
                                                                         "fields": ["email", "firstname"]})  # fmt: skip


def test_salesforce_query_pages_through_next_records_url(owner, crm, db, run_jobs):
    workspace, user, client = owner
    connect(client, crm, workspace.slug, "salesforce")
    crm.configure("salesforce", query_batch=40)
    people = [{"LastName": f"Doe{i}", "FirstName": "Jo", "Email": f"jo{i}@example.com",
               "Title": "VP Sales" if i % 2 else "Engineer"} for i in range(120)]  # fmt: skip
    ids = seed(crm, "salesforce", object="Contact", records=people)["ids"]
    source = pull.create_source(
        workspace, user, "salesforce", "query",
        {"object": "Contact", "fields": ["Email", "LastName", "Title"], "where": [["Title", "=", "VP Sales"]]},
    )  # fmt: skip
    pull.start_pull(workspace, user, source)
    db.session.flush()
    run_jobs()
    first = latest(db, source.id)
    assert first.status == "done", first.error
    assert (first.rows_read, first.inserted) == (60, 60)  # two pages of 40 and 20 (nextRecordsUrl followed)
    rows = table_rows(db, source.table_id)
    assert {r["Salesforce ID"] for r in rows} == {ids[i] for i in range(1, 120, 2)}
    assert {r["Title"] for r in rows} == {"VP Sales"}
    touch(crm, "salesforce", object="Contact", ids=[ids[1], ids[3], ids[4]], values={"Email": "new@example.com"})
    db.session.expire_all()
    pull.start_pull(workspace, user, db.session.get(CrmPullSource, source.id))
    db.session.flush()
    run_jobs()
    second = latest(db, source.id)
    assert (second.status, second.rows_read, second.inserted, second.updated) == ("done", 2, 0, 2)
    assert len(table_rows(db, source.table_id)) == 60
    # A full re-pull reads everything again and still writes no duplicate.
    pull.start_pull(workspace, user, db.session.get(CrmPullSource, source.id), full=True)
    db.session.flush()
    run_jobs()
    third = latest(db, source.id)
    assert (third.status, third.rows_read, third.inserted, third.updated) == ("done", 60, 0, 60)
    assert len(table_rows(db, source.table_id)) == 60


def test_an_expired_token_mid_pull_is_refreshed_and_the_pull_completes(owner, crm, db, run_jobs):
    workspace, user, client = owner
    connect(client, crm, workspace.slug, "salesforce")
    crm.configure("salesforce", query_batch=25)
    seed(crm, "salesforce", object="Contact", records=[{"LastName": f"L{i}"} for i in range(100)])
    source = pull.create_source(workspace, user, "salesforce", "query", {"object": "Contact", "fields": ["LastName"]})
    pull.start_pull(workspace, user, source)
    db.session.flush()
    crm.expire("salesforce")  # every session ends before the pull starts: the first call answers 401
    run_jobs()
    done = latest(db, source.id)
    assert (done.status, done.rows_read, done.inserted) == ("done", 100, 100), done.error
    assert crm.state("salesforce")["grants"].get("refresh_token") == 1
    assert len(table_rows(db, source.table_id)) == 100


def test_429s_mid_pull_are_retried_and_nothing_is_lost(owner, crm, db, run_jobs, sandbox_server):
    workspace, user, client = owner
    connect(client, crm, workspace.slug, "hubspot")
    made, source = _hubspot_list_source(crm, workspace, user, 250)
    pull.start_pull(workspace, user, source)
    db.session.flush()
    sandbox_server.configure("hubspot", error_rate=0.5, fail_status=429)
    try:
        run_jobs()
    finally:
        sandbox_server.configure("hubspot", error_rate=0)
    done = latest(db, source.id)
    assert (done.status, done.rows_read, done.inserted) == ("done", 250, 250), done.error
    rows = table_rows(db, source.table_id)
    assert sorted(r["HubSpot ID"] for r in rows) == sorted(made["ids"])


def test_a_killed_pull_retried_writes_no_duplicate(owner, crm, db, run_jobs):
    workspace, user, client = owner
    connect(client, crm, workspace.slug, "hubspot")
    made, source = _hubspot_list_source(crm, workspace, user, 120)
    first = pull.start_pull(workspace, user, source)
    db.session.flush()
    run_jobs()
    # As after a SIGKILL mid-run: the same pull is running again from an old cursor (pages re-read).
    db.session.expire_all()
    killed = db.session.get(CrmPull, first.id)
    killed.status, killed.cursor = "running", {}
    db.session.flush()
    pull.run_pull(killed.id)
    db.session.expire_all()
    again = db.session.get(CrmPull, first.id)
    assert again.status == "done"
    assert len(table_rows(db, source.table_id)) == 120


def test_a_bad_field_or_condition_is_refused_and_creates_no_table(owner, crm, db):
    workspace, user, client = owner
    connect(client, crm, workspace.slug, "salesforce")
    connect(client, crm, workspace.slug, "hubspot")
    before = db.session.query(Table).filter_by(workspace_id=workspace.id).count()
    cases = [
        ("salesforce", "query", {"object": "Contact", "fields": ["Email", "Nope__c"]}, "no field “Nope__c”"),
        ("salesforce", "query", {"object": "Contact", "where": [["Email", "LIKE", "x"]]}, "Unknown comparison"),
        ("salesforce", "query", {"object": "Opportunity"}, "Choose one of"),
        ("salesforce", "query", {"object": "Contact", "where": [["LastModifiedDate", ">", "soon"]]}, "not a date"),
        ("hubspot", "list", {"list_id": "999999"}, "HubSpot list 999999"),
        ("hubspot", "object", {"object": "contacts", "fields": ["emial"]}, "no field “emial”"),
    ]
    for provider, kind, raw, message in cases:
        with pytest.raises(MorketError) as caught:
            pull.create_source(workspace, user, provider, kind, raw)
        assert message in caught.value.message
        assert caught.value.status < 500
    assert db.session.query(Table).filter_by(workspace_id=workspace.id).count() == before
    assert db.session.query(CrmPullSource).count() == 0


def test_a_where_value_is_a_literal_never_soql():
    types = {"Email": "email", "NumberOfEmployees": "int", "LastName": "string"}
    soql = pull_read.build_soql(
        {"object": "Contact", "fields": ["Email"], "where": [["LastName", "=", "x' OR Name != '"]]}, types, None
    )
    assert soql == (
        "SELECT Id, LastModifiedDate, Email FROM Contact WHERE LastName = 'x\\' OR Name != \\'' "
        "ORDER BY LastModifiedDate"
    )
    with pytest.raises(MorketError):
        pull_read.build_soql({"object": "Contact", "where": [["NumberOfEmployees", "=", "1 OR 1=1"]]}, types, None)


def test_another_workspaces_connection_is_never_used(owner, crm, db, new_client):
    workspace, user, client = owner
    connect(client, crm, workspace.slug, "hubspot")
    made = seed(crm, "hubspot", object="contacts", records=contacts(3), list="Mine")
    other, other_owner = workspace_with_owner(name="Other Co")
    db.session.flush()
    with pytest.raises(NotFound):
        pull.create_source(other, other_owner, "hubspot", "list", {"list_id": made["list_id"]})
    source = pull.create_source(workspace, user, "hubspot", "list", {"list_id": made["list_id"]})
    with pytest.raises(NotFound):
        pull.start_pull(other, other_owner, source)
