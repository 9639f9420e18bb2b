"""A Salesforce pull written as SOQL: owners and admins only, one SELECT of one object, fields
checked against describe, and the query Morket runs rebuilt from the parts it read."""

from __future__ import annotations

import pytest

from morket.core.errors import ValidationFailed
from morket.crm import pull, pull_read
from morket.tables.models import Table
from tests.crm.conftest import connect
from tests.crm.test_pull import latest, owner, seed, table_rows  # noqa: F401 - owner is a fixture
from tests.crm.test_pull_api import _bearer
from tests.factories import MembershipFactory, login

PEOPLE = [{"LastName": f"Doe{i}", "Email": f"jo{i}@example.com", "Title": "VP Sales" if i % 3 == 0 else "CTO"}
          for i in range(9)]  # fmt: skip


def test_an_owner_pulls_with_soql_read_into_checked_parts(owner, crm, db, run_jobs):  # noqa: F811
    workspace, user, client = owner
    connect(client, crm, workspace.slug, "salesforce")
    ids = seed(crm, "salesforce", object="Contact", records=PEOPLE)["ids"]
    soql = "select Email, LastName from Contact where Title = 'VP Sales' and LastName != 'Nobody'"
    source = pull.create_source(workspace, user, "salesforce", "query", {"soql": soql})
    assert source.spec["object"] == "Contact" and source.spec["fields"] == ["Email", "LastName"]
    assert source.spec["where"] == [["Title", "=", "VP Sales"], ["LastName", "!=", "Nobody"]]
    pull.start_pull(workspace, user, source)
    db.session.flush()
    run_jobs()
    done = latest(db, source.id)
    assert done.status == "done", done.error
    assert sorted(r["Salesforce ID"] for r in table_rows(db, source.table_id)) == sorted(ids[0::3])


@pytest.mark.parametrize(
    ("soql", "says"),
    [
        ("SELECT Email FROM Contact; DELETE FROM Contact", "no semicolons"),
        ("SELECT Email FROM Contact WHERE Title = 'a' OR Title != 'a'", "Join conditions with AND"),
        ("SELECT Email FROM Contact WHERE Id IN (SELECT Id FROM Lead)", "cannot read"),
        ("SELECT Account.Name FROM Contact", "plain field names"),
        ("SELECT Email FROM Contact, Lead", "Write SELECT"),
        ("SELECT Email FROM Contact /* hi */", "no semicolons or comments"),
        ("SELECT Secret__c FROM Contact", "Contact has no field “Secret__c”"),
        ("SELECT Email FROM Contact WHERE Nope__c = 'x'", "Contact has no field “Nope__c”"),
    ],
)
def test_a_bad_query_is_refused_and_creates_no_table(owner, crm, db, soql, says):  # noqa: F811
    workspace, user, client = owner
    connect(client, crm, workspace.slug, "salesforce")
    before = db.session.query(Table).filter_by(workspace_id=workspace.id).count()
    with pytest.raises(ValidationFailed) as refused:
        pull.create_source(workspace, user, "salesforce", "query", {"soql": soql})
    assert says in refused.value.message
    assert db.session.query(Table).filter_by(workspace_id=workspace.id).count() == before


def test_a_quote_in_a_literal_stays_a_literal():
    parts = pull_read.parse_soql(r"SELECT Email FROM Contact WHERE LastName = 'O\'Brien'")
    assert parts["where"] == [["LastName", "=", "O'Brien"]]
    built = pull_read.build_soql(parts, {"Email": "email", "LastName": "string"}, None)
    assert "LastName = 'O\\'Brien'" in built


def test_members_cannot_and_owners_see_the_soql_box(owner, crm, db, new_client):  # noqa: F811
    workspace, user, client = owner
    connect(client, crm, workspace.slug, "salesforce")
    member = MembershipFactory(workspace=workspace, role="member").user
    db.session.flush()
    api = new_client()
    body = {"provider": "salesforce", "kind": "query", "soql": "SELECT Email FROM Contact"}
    refused = api.post("/api/v1/crm/pull-sources", json=body, headers=_bearer(member, workspace, "member"))
    assert refused.status_code == 403 and "owners and admins" in refused.get_json()["error"]["message"]
    made = api.post("/api/v1/crm/pull-sources", json=body | {"start": False}, headers=_bearer(user, workspace, "owner"))
    assert made.status_code == 201, made.get_data(as_text=True)
    both = api.post("/api/v1/crm/pull-sources", json=body | {"fields": ["Email"]},
                    headers=_bearer(user, workspace, "owner"))  # fmt: skip
    assert both.status_code == 422 and "not both" in both.get_json()["error"]["message"]
    assert "write the query in SOQL" in client.get(f"/w/{workspace.slug}/crm/pull").get_data(as_text=True)
    browser = new_client()
    login(browser, member)
    assert "write the query in SOQL" not in browser.get(f"/w/{workspace.slug}/crm/pull").get_data(as_text=True)
