"""Mappings and pushes over the JSON API: roles, tenants, the envelope, and a push polled to the end."""

from __future__ import annotations

from morket.api.tokens import encode_access_token
from morket.crm.push_executor import work
from morket.tables import rows as table_rows
from tests.crm.push_support import cells, column, run_push, save, setup
from tests.factories import MembershipFactory, workspace_with_owner


def _bearer(user, workspace, role: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {encode_access_token(user.id, workspace.id, role)}"}


def test_mapping_preview_push_and_poll(client, new_client, crm, db):
    workspace, owner, table = setup(client, db, crm, "hubspot", 120, name="Api Push Co")
    viewer = MembershipFactory(workspace=workspace, role="viewer").user
    member = MembershipFactory(workspace=workspace, role="member").user
    db.session.commit()
    api = new_client()
    base = f"/api/v1/tables/{table.id}"

    suggested = api.get(f"{base}/crm-mappings/hubspot", headers=_bearer(viewer, workspace, "viewer"))
    assert suggested.status_code == 200, suggested.get_data(as_text=True)
    data = suggested.get_json()["data"]
    assert data["saved"] is False and data["key_field"] == "email"

    body = {"object": "contacts", "key_field": "email", "key_column_id": column(table, "Email"),
            "fields": [{"column_id": column(table, "First name"), "field": "firstname"},
                       {"column_id": column(table, "Company"), "field": "num_employees"}]}  # fmt: skip
    refused = api.put(f"{base}/crm-mappings/hubspot", json=body, headers=_bearer(viewer, workspace, "viewer"))
    assert refused.status_code == 403
    saved = api.put(f"{base}/crm-mappings/hubspot", json=body, headers=_bearer(member, workspace, "member"))
    assert saved.status_code == 200, saved.get_data(as_text=True)
    checks = saved.get_json()["data"]["checks"]
    assert [c["level"] for c in checks] == ["ok", "warn"]
    bad = {**body, "key_column_id": column(table, "Employees")}
    wrong = api.put(f"{base}/crm-mappings/hubspot", json=bad, headers=_bearer(member, workspace, "member"))
    assert wrong.status_code == 422 and "email" in wrong.get_json()["error"]["message"]

    preview = api.post(f"{base}/crm-pushes/hubspot/preview", json={}, headers=_bearer(member, workspace, "member"))
    assert preview.status_code == 200, preview.get_data(as_text=True)
    assert preview.get_json()["data"] | {"differences": [], "changes_id": None} == {
        "rows": 120, "create": 120, "update": 0, "unchanged": 0, "skipped": 0, "calls": 2, "estimate_calls": 2,
        "differences": [], "changes_id": None,
    }  # fmt: skip
    assert (
        api.post(f"{base}/crm-pushes/hubspot", json={}, headers=_bearer(viewer, workspace, "viewer")).status_code == 403
    )
    started = api.post(f"{base}/crm-pushes/hubspot", json={"scope": "selected", "row_ids": []},
                       headers=_bearer(member, workspace, "member"))  # fmt: skip
    assert started.status_code == 422  # nothing selected
    started = api.post(f"{base}/crm-pushes/hubspot", json={}, headers=_bearer(member, workspace, "member"))
    assert started.status_code == 202, started.get_data(as_text=True)
    push_id = started.get_json()["data"]["id"]
    work(push_id, 0, budget=30)
    polled = api.get(f"/api/v1/crm-pushes/{push_id}", headers=_bearer(viewer, workspace, "viewer"))
    assert polled.status_code == 200
    got = polled.get_json()["data"]
    assert (got["status"], got["created"], got["updated"], got["failed"]) == ("completed", 120, 0, 0)
    assert crm.state("hubspot")["records"]["contacts"] == 120

    # Another workspace sees none of it.
    other, stranger = workspace_with_owner(name="Elsewhere Push")
    db.session.commit()
    assert api.get(f"/api/v1/crm-pushes/{push_id}", headers=_bearer(stranger, other, "owner")).status_code == 404
    assert api.get(f"{base}/crm-mappings/hubspot", headers=_bearer(stranger, other, "owner")).status_code == 404
    again = api.post(f"/api/v1/crm-pushes/{push_id}/cancel", headers=_bearer(member, workspace, "member"))
    assert again.status_code == 409


def test_send_only_the_changes_of_a_preview_over_the_api(client, new_client, crm, db):
    workspace, owner, table = setup(client, db, crm, "hubspot", 150, name="Api Changes Co")
    mapping, _ = save(workspace, owner, table, "hubspot", {
        "object": "contacts", "key_field": "email", "key_column_id": column(table, "Email"),
        "fields": [{"column_id": column(table, "Job title"), "field": "jobtitle"}]})  # fmt: skip
    member = MembershipFactory(workspace=workspace, role="member").user
    colleague = MembershipFactory(workspace=workspace, role="member").user
    viewer = MembershipFactory(workspace=workspace, role="viewer").user
    db.session.commit()
    assert run_push(db, workspace, owner, table, "hubspot").status == "completed"
    edited = sorted(cells(db, table, mapping.record_id_column_id))[:4]
    for rid in edited:
        table_rows.update_cell(workspace, owner, table, rid, column(table, "Job title"), "Head of Growth")
    db.session.commit()
    api = new_client()
    base = f"/api/v1/tables/{table.id}/crm-pushes/hubspot"
    mine = _bearer(member, workspace, "member")

    preview = api.post(f"{base}/preview", json={}, headers=mine)
    assert preview.status_code == 200, preview.get_data(as_text=True)
    data = preview.get_json()["data"]
    assert (data["create"], data["update"], data["unchanged"]) == (0, 4, 146)
    changes = data["changes_id"]
    assert changes

    # Only its author may use it, in this workspace, with the right role, and not with a scope besides.
    assert api.post(base, json={"changes_id": changes}, headers=_bearer(viewer, workspace, "viewer")).status_code == 403
    theirs = api.post(base, json={"changes_id": changes}, headers=_bearer(colleague, workspace, "member"))
    assert theirs.status_code == 422 and theirs.get_json()["error"]["fields"] == {"changes": ["expired"]}
    other, stranger = workspace_with_owner(name="Elsewhere Changes")
    db.session.commit()
    assert api.post(base, json={"changes_id": changes}, headers=_bearer(stranger, other, "owner")).status_code == 404
    both = api.post(base, json={"changes_id": changes, "scope": "selected", "row_ids": edited[:1]}, headers=mine)
    assert both.status_code == 422 and "changes_id" in both.get_json()["error"]["fields"]
    unknown = api.post(base, json={"changes_id": "no-such-preview"}, headers=mine)
    assert unknown.status_code == 422 and "expired" in unknown.get_json()["error"]["message"]

    started = api.post(base, json={"changes_id": changes}, headers=mine)
    assert started.status_code == 202, started.get_data(as_text=True)
    push_id = started.get_json()["data"]["id"]
    assert started.get_json()["data"]["total"] == 4
    work(push_id, 0, budget=30)
    got = api.get(f"/api/v1/crm-pushes/{push_id}", headers=mine).get_json()["data"]
    assert (got["status"], got["total"], got["created"], got["updated"], got["failed"]) == ("completed", 4, 0, 4, 0)
    assert crm.state("hubspot")["records"]["contacts"] == 150
    again = api.post(f"{base}/preview", json={}, headers=mine).get_json()["data"]
    assert (again["update"], again["unchanged"], again["changes_id"]) == (0, 150, None)
