"""Records deleted in the CRM: a pull source keeps their rows (the default) or removes them.

HubSpot objects: archived records (``?archived=true``); HubSpot lists: members that left the list
or were archived; Salesforce: ``getDeleted`` (``/sobjects/{SObject}/deleted/``). Rows typed in by
hand (no record id) are never removed. Also: the upsert key picked by a field name.
"""

from __future__ import annotations

import pytest

from morket.core.errors import ValidationFailed
from morket.crm import pull
from morket.crm.pull_models import CrmPullSource
from morket.tables import rows as table_rows_service
from morket.tables import service as tables
from morket.tables.models import Table
from tests.crm.conftest import connect
from tests.crm.test_pull import contacts, latest, owner, seed, table_rows  # noqa: F401 - owner is a fixture


def control(crm, provider: str, action: str, **body) -> list[str]:
    return crm.http.post(f"{crm.base}/_sandbox/{provider}/{action}", json=body).raise_for_status().json()["ids"]


def pull_now(db, workspace, user, source_id: int, run_jobs, *, full: bool = False):
    db.session.expire_all()
    pull.start_pull(workspace, user, db.session.get(CrmPullSource, source_id), full=full)
    db.session.flush()
    run_jobs()
    done = latest(db, source_id)
    assert done.status == "done", done.error
    return done


@pytest.mark.parametrize("on_delete", ["remove", "keep"])
def test_hubspot_archived_records_are_removed_or_kept(owner, crm, db, run_jobs, on_delete):  # noqa: F811
    workspace, user, client = owner
    connect(client, crm, workspace.slug, "hubspot")
    ids = seed(crm, "hubspot", object="contacts", records=contacts(30))["ids"]
    source = pull.create_source(workspace, user, "hubspot", "object", {"object": "contacts", "fields": ["email"]},
                                on_delete=on_delete)  # fmt: skip
    assert pull_now(db, workspace, user, source.id, run_jobs).inserted == 30
    table = db.session.get(Table, source.table_id)
    table_rows_service.insert_rows(workspace, user, table, [{"Email": "typed@by-hand.example"}])  # no HubSpot ID
    db.session.flush()
    assert control(crm, "hubspot", "archive", object="contacts", ids=ids[:5]) == ids[:5]

    second = pull_now(db, workspace, user, source.id, run_jobs)
    rows = table_rows(db, source.table_id)
    if on_delete == "remove":
        assert second.removed == 5
        assert sorted(r["HubSpot ID"] for r in rows if r["HubSpot ID"]) == sorted(ids[5:])
    else:
        assert second.removed == 0
        assert sorted(r["HubSpot ID"] for r in rows if r["HubSpot ID"]) == sorted(ids)
    assert "typed@by-hand.example" in {r["Email"] for r in rows}  # never removed: no record id
    # A full re-pull removes nothing more (and never brings the archived back).
    third = pull_now(db, workspace, user, source.id, run_jobs, full=True)
    assert third.removed == 0 and third.inserted == 0
    assert len(table_rows(db, source.table_id)) == len(rows)


def test_hubspot_list_members_that_left_or_were_archived_are_removed(owner, crm, db, run_jobs):  # noqa: F811
    workspace, user, client = owner
    connect(client, crm, workspace.slug, "hubspot")
    made = seed(crm, "hubspot", object="contacts", records=contacts(20), list="Event")
    ids = made["ids"]
    source = pull.create_source(workspace, user, "hubspot", "list", {"list_id": made["list_id"], "fields": ["email"]},
                                on_delete="remove")  # fmt: skip
    assert pull_now(db, workspace, user, source.id, run_jobs).inserted == 20
    control(crm, "hubspot", "unlist", list_id=made["list_id"], ids=ids[:3])  # left the list, still in HubSpot
    control(crm, "hubspot", "archive", object="contacts", ids=ids[3:5])  # deleted in HubSpot
    second = pull_now(db, workspace, user, source.id, run_jobs)
    assert second.removed == 5
    assert sorted(r["HubSpot ID"] for r in table_rows(db, source.table_id)) == sorted(ids[5:])


def test_salesforce_deleted_records_are_removed(owner, crm, db, run_jobs):  # noqa: F811
    workspace, user, client = owner
    connect(client, crm, workspace.slug, "salesforce")
    people = [{"LastName": f"Doe{i}", "Email": f"jo{i}@example.com"} for i in range(12)]
    ids = seed(crm, "salesforce", object="Contact", records=people)["ids"]
    source = pull.create_source(workspace, user, "salesforce", "query",
                                {"object": "Contact", "fields": ["Email", "LastName"]}, on_delete="remove")  # fmt: skip
    assert pull_now(db, workspace, user, source.id, run_jobs).inserted == 12
    assert control(crm, "salesforce", "delete", object="Contact", ids=ids[:4]) == ids[:4]
    second = pull_now(db, workspace, user, source.id, run_jobs)
    assert (second.rows_read, second.removed) == (0, 4)
    assert sorted(r["Salesforce ID"] for r in table_rows(db, source.table_id)) == sorted(ids[4:])
    assert pull_now(db, workspace, user, source.id, run_jobs).removed == 0  # already gone: nothing twice


def test_a_bad_on_delete_is_refused_and_creates_no_table(owner, crm, db):  # noqa: F811
    workspace, user, client = owner
    connect(client, crm, workspace.slug, "hubspot")
    before = db.session.query(Table).filter_by(workspace_id=workspace.id).count()
    with pytest.raises(ValidationFailed, match="keep the row or remove it"):
        pull.create_source(workspace, user, "hubspot", "object", {"object": "contacts", "fields": ["email"]},
                           on_delete="purge")  # fmt: skip
    assert db.session.query(Table).filter_by(workspace_id=workspace.id).count() == before


def test_the_upsert_key_can_be_a_field_of_the_pull(owner, crm, db, run_jobs):  # noqa: F811
    workspace, user, client = owner
    connect(client, crm, workspace.slug, "hubspot")
    seed(crm, "hubspot", object="contacts", records=contacts(6))
    sheet = tables.create_table(workspace, user, "Leads", columns=[{"name": "Email", "type": "email"}])
    table_rows_service.insert_rows(workspace, user, sheet, [{"Email": f"PERSON{i}@example.com"} for i in range(3)])
    source = pull.create_source(workspace, user, "hubspot", "object", {"object": "contacts", "fields": ["email"]},
                                table=sheet, key_column="email")  # fmt: skip
    assert source.key_column_id == next(c.id for c in sheet.live_columns if c.name == "Email")
    done = pull_now(db, workspace, user, source.id, run_jobs)
    assert (done.inserted, done.updated) == (3, 3)  # the three typed rows matched by email, whatever the case
    assert len(table_rows(db, sheet.id)) == 6


def test_on_delete_over_the_api_and_the_page(owner, crm, db, new_client, run_jobs):  # noqa: F811
    from tests.crm.test_pull_api import _bearer
    from tests.factories import csrf_token

    workspace, user, client = owner
    connect(client, crm, workspace.slug, "hubspot")
    ids = seed(crm, "hubspot", object="contacts", records=contacts(8))["ids"]
    api = new_client()
    body = {"provider": "hubspot", "kind": "object", "object": "contacts", "fields": ["email"]}
    bad = api.post("/api/v1/crm/pull-sources", json=body | {"on_delete": "purge"},
                   headers=_bearer(user, workspace, "owner"))  # fmt: skip
    assert bad.status_code == 422 and "on_delete" in bad.get_data(as_text=True)
    made = api.post("/api/v1/crm/pull-sources", json=body | {"on_delete": "remove"},
                    headers=_bearer(user, workspace, "owner"))  # fmt: skip
    assert made.status_code == 201 and made.get_json()["data"]["on_delete"] == "remove"
    run_jobs()
    control(crm, "hubspot", "archive", object="contacts", ids=ids[:2])
    source_id = made.get_json()["data"]["id"]
    again = api.post(f"/api/v1/crm/pull-sources/{source_id}/pulls", json={}, headers=_bearer(user, workspace, "owner"))
    assert again.status_code in (200, 201, 202), again.get_data(as_text=True)
    run_jobs()
    polled = api.get(f"/api/v1/crm/pulls/{again.get_json()['data']['id']}", headers=_bearer(user, workspace, "owner"))
    assert polled.get_json()["data"]["removed"] == 2

    # The page's form: the option and the key column, posted like a browser would.
    page = client.get(f"/w/{workspace.slug}/crm/pull").get_data(as_text=True)
    assert "When a record is deleted in the CRM" in page and 'name="key_column"' in page
    resp = client.post(f"/w/{workspace.slug}/crm/pull/start",
                       data={"provider": "hubspot", "kind": "object", "object": "contacts", "fields": "email",
                             "on_delete": "remove", "key_column": "email", "table_name": "From the form"},
                       headers={"X-CSRFToken": csrf_token(client, f"/w/{workspace.slug}/crm/pull")})  # fmt: skip
    assert resp.status_code == 303
    db.session.expire_all()
    created = db.session.query(CrmPullSource).filter_by(workspace_id=workspace.id).order_by(CrmPullSource.id.desc())
    source = created.first()
    assert source.on_delete == "remove"
    key = next(c for c in db.session.get(Table, source.table_id).live_columns if c.id == source.key_column_id)
    assert key.name == "Email"


def test_salesforce_deletions_older_than_get_deleted_reaches_are_found_by_comparing_keys(owner, crm, db, run_jobs):  # noqa: F811
    from datetime import timedelta

    from morket.core.db import utcnow

    workspace, user, client = owner
    connect(client, crm, workspace.slug, "salesforce")
    people = [{"LastName": f"Old{i}", "Email": f"old{i}@example.com"} for i in range(12)]
    ids = seed(crm, "salesforce", object="Contact", records=people)["ids"]
    source = pull.create_source(workspace, user, "salesforce", "query",
                                {"object": "Contact", "fields": ["Email", "LastName"]}, on_delete="remove")  # fmt: skip
    assert pull_now(db, workspace, user, source.id, run_jobs).inserted == 12
    table = db.session.get(Table, source.table_id)
    table_rows_service.insert_rows(workspace, user, table, [{"Email": "typed@by-hand.example"}])  # no Salesforce ID
    # The last pull was 45 days ago; four records were deleted 40 days ago (getDeleted no longer names
    # them: it answers for 30 days), two just now.
    db.session.get(CrmPullSource, source.id).last_run_at = utcnow() - timedelta(days=45)
    db.session.commit()
    assert control(crm, "salesforce", "delete", object="Contact", ids=ids[:4], days_ago=40) == ids[:4]
    assert control(crm, "salesforce", "delete", object="Contact", ids=ids[4:6]) == ids[4:6]

    second = pull_now(db, workspace, user, source.id, run_jobs)
    assert second.removed == 6
    rows = table_rows(db, source.table_id)
    assert sorted(r["Salesforce ID"] for r in rows if r["Salesforce ID"]) == sorted(ids[6:])
    assert "typed@by-hand.example" in {r["Email"] for r in rows}  # never removed: no record id

    # The next pull is within getDeleted's reach again: a record deleted now is removed, nothing twice.
    assert control(crm, "salesforce", "delete", object="Contact", ids=ids[6:7]) == ids[6:7]
    third = pull_now(db, workspace, user, source.id, run_jobs)
    assert third.removed == 1
    assert sorted(r["Salesforce ID"] for r in table_rows(db, source.table_id) if r["Salesforce ID"]) == sorted(ids[7:])
