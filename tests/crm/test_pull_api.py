"""The CRM pull API: start, poll, list; enveloped errors; roles and tenants."""

from __future__ import annotations

from morket.api.tokens import encode_access_token
from tests.crm.conftest import connect
from tests.crm.test_pull import contacts, seed
from tests.factories import MembershipFactory, login, workspace_with_owner


def _bearer(user, workspace, role: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {encode_access_token(user.id, workspace.id, role)}"}


def test_start_poll_and_list_pulls_over_the_api(client, new_client, crm, db, run_jobs):
    workspace, owner = workspace_with_owner(name="Pull Api Co")
    member = MembershipFactory(workspace=workspace, role="member").user
    viewer = MembershipFactory(workspace=workspace, role="viewer").user
    other, other_owner = workspace_with_owner(name="Elsewhere")
    db.session.flush()
    login(client, owner)
    connect(client, crm, workspace.slug, "hubspot")
    made = seed(crm, "hubspot", object="contacts", records=contacts(30), list="API list")
    api = new_client()
    body = {"provider": "hubspot", "kind": "list", "list_id": made["list_id"], "fields": ["email", "firstname"]}

    refused = api.post("/api/v1/crm/pull-sources", json=body, headers=_bearer(viewer, workspace, "viewer"))
    assert refused.status_code == 403 and refused.get_json()["error"]["code"]
    bad = api.post("/api/v1/crm/pull-sources", json=body | {"fields": ["nope"]},
                   headers=_bearer(member, workspace, "member"))  # fmt: skip
    assert bad.status_code == 422 and "nope" in bad.get_json()["error"]["message"]
    # Another workspace has no HubSpot connection: the list is never read with this one's.
    elsewhere = api.post("/api/v1/crm/pull-sources", json=body, headers=_bearer(other_owner, other, "owner"))
    assert elsewhere.status_code == 404

    created = api.post("/api/v1/crm/pull-sources", json=body, headers=_bearer(member, workspace, "member"))
    assert created.status_code == 201, created.get_data(as_text=True)
    source = created.get_json()["data"]
    assert source["latest_pull"]["status"] == "queued" and source["label"] == "HubSpot list “API list”"
    busy = api.post(f"/api/v1/crm/pull-sources/{source['id']}/pulls", json={},
                    headers=_bearer(member, workspace, "member"))  # fmt: skip
    assert busy.status_code == 409
    run_jobs()
    pull_id = source["latest_pull"]["id"]
    polled = api.get(f"/api/v1/crm/pulls/{pull_id}", headers=_bearer(viewer, workspace, "viewer")).get_json()["data"]
    assert (polled["status"], polled["rows_read"], polled["inserted"]) == ("done", 30, 0 + 30)
    assert api.get(f"/api/v1/crm/pulls/{pull_id}", headers=_bearer(other_owner, other, "owner")).status_code == 404
    listed = api.get("/api/v1/crm/pull-sources", headers=_bearer(viewer, workspace, "viewer")).get_json()["data"]
    assert [s["id"] for s in listed] == [source["id"]] and listed[0]["high_water"]
    assert api.get("/api/v1/crm/pull-sources", headers=_bearer(other_owner, other, "owner")).get_json()["data"] == []
    again = api.post(f"/api/v1/crm/pull-sources/{source['id']}/pulls", json={"full": True},
                     headers=_bearer(member, workspace, "member"))  # fmt: skip
    assert again.status_code == 202 and again.get_json()["data"]["full"] is True
    cancelled = api.post(f"/api/v1/crm/pulls/{again.get_json()['data']['id']}/cancel",
                         headers=_bearer(member, workspace, "member"))  # fmt: skip
    assert cancelled.get_json()["data"]["status"] == "cancelled"


def test_ids_beyond_what_the_database_holds_are_a_422_not_a_500(client, db):
    workspace, owner = workspace_with_owner(name="Big Ids Co")
    headers = _bearer(owner, workspace, "owner")
    too_big = 2**63
    pull = client.post(
        "/api/v1/crm/pull-sources", json={"provider": "hubspot", "kind": "list", "table_id": too_big}, headers=headers
    )
    assert pull.status_code == 422 and "table_id" in pull.get_json()["error"]["fields"]
    push = client.post(
        "/api/v1/tables/1/crm-pushes/hubspot",
        json={"scope": "selected", "row_ids": [1, too_big], "view_id": too_big},
        headers=headers,
    )
    assert push.status_code == 422
    assert {"row_ids", "view_id"} & {key.split(".")[0] for key in push.get_json()["error"]["fields"]}
