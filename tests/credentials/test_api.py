"""Credentials over the JSON API: store, list masked, delete; validation, roles, tenancy, API keys."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from morket.core.models import AuditEvent
from morket.credentials import service
from morket.credentials.models import ProviderCredential
from morket.workspaces import service as ws_service
from tests.credentials.conftest import bearer

SECRET = "sk-test-clearbit-0c8e2f61aa57"


def test_store_list_and_delete(client, db, team, access_token):
    token = access_token(team["admin"], team.workspace)
    resp = client.post(
        "/api/v1/credentials", json={"provider": "clearbit", "secret": SECRET, "label": "Ops"}, headers=bearer(token)
    )
    assert resp.status_code == 201, resp.get_json()
    data = resp.get_json()["data"]
    assert (data["provider"], data["label"], data["masked"]) == ("clearbit", "Ops", "••••aa57")
    assert "secret" not in data and SECRET not in resp.get_data(as_text=True)
    listed = client.get("/api/v1/credentials", headers=bearer(token)).get_json()["data"]
    assert [(c["id"], c["masked"], c["last_used_at"]) for c in listed] == [(data["id"], "••••aa57", None)]
    # resolve_key is what a run calls; the API then shows when the key was last used.
    assert service.resolve_key(team.workspace.id, "clearbit") == (SECRET, "own")
    db.session.commit()
    assert client.get("/api/v1/credentials", headers=bearer(token)).get_json()["data"][0]["last_used_at"]
    resp = client.delete(f"/api/v1/credentials/{data['id']}", headers=bearer(token))
    assert resp.status_code == 200 and resp.get_json()["data"] == {"id": data["id"], "deleted": True}
    assert client.get("/api/v1/credentials", headers=bearer(token)).get_json()["data"] == []
    actions = db.session.scalars(
        select(AuditEvent.action).where(AuditEvent.workspace_id == team.workspace.id).order_by(AuditEvent.id)
    ).all()
    assert [a for a in actions if a.startswith("credential")] == [
        "credential.created",
        "credential.used",
        "credential.deleted",
    ]


@pytest.mark.parametrize(
    ("body", "status", "field"),
    [
        ({"provider": "hunter"}, 422, "secret"),
        ({"provider": "hunter", "secret": "sk-test with space"}, 422, "secret"),
        ({"provider": "hunter", "secret": "sk-1"}, 422, "secret"),
        ({"provider": "hunter", "secret": "x" * 501}, 422, "secret"),
        ({"provider": "nope", "secret": SECRET}, 422, "provider"),
        ({"provider": "hunter", "secret": SECRET, "label": "y" * 121}, 422, "label"),
        ({"provider": "hunter", "secret": SECRET, "extra": 1}, 422, "extra"),
        ({"provider": "hunter", "secret": 12345678}, 422, "secret"),
    ],
)
def test_bad_bodies_are_422_naming_the_field(client, db, team, access_token, body, status, field):
    token = access_token(team["owner"], team.workspace)
    resp = client.post("/api/v1/credentials", json=body, headers=bearer(token))
    payload = resp.get_json()
    assert resp.status_code == status and payload["success"] is False, payload
    assert field in payload["error"]["fields"], payload
    assert str(body.get("secret", "")) not in resp.get_data(as_text=True) or not body.get("secret")
    assert db.session.scalar(select(func.count()).select_from(ProviderCredential)) == 0


def test_invalid_json_is_a_400(client, db, team, access_token):
    token = access_token(team["owner"], team.workspace)
    resp = client.post("/api/v1/credentials", data="{not json", content_type="application/json", headers=bearer(token))
    assert resp.status_code == 400 and resp.get_json()["error"]["code"] == "invalid_json"


def test_a_second_key_for_a_provider_is_a_409(client, db, team, access_token):
    service.create_credential(team.workspace, team["owner"], "hunter", SECRET)
    token = access_token(team["owner"], team.workspace)
    resp = client.post(
        "/api/v1/credentials", json={"provider": "hunter", "secret": "sk-test-other-9999"}, headers=bearer(token)
    )
    assert resp.status_code == 409 and resp.get_json()["error"]["code"] == "conflict"


@pytest.mark.parametrize("role", ["member", "viewer", "billing_admin"])
def test_other_roles_get_403(client, db, team, access_token, role):
    credential = service.create_credential(team.workspace, team["owner"], "hunter", SECRET)
    token = access_token(team[role], team.workspace)
    assert client.get("/api/v1/credentials", headers=bearer(token)).status_code == 403
    resp = client.post("/api/v1/credentials", json={"provider": "apollo", "secret": SECRET}, headers=bearer(token))
    assert resp.status_code == 403
    assert client.delete(f"/api/v1/credentials/{credential.id}", headers=bearer(token)).status_code == 403
    assert [c.provider for c in service.list_credentials(team.workspace)] == ["hunter"]


def test_another_workspace_gets_404_and_sees_nothing(client, db, team, stranger, access_token):
    credential = service.create_credential(team.workspace, team["owner"], "hunter", SECRET)
    token = access_token(stranger["owner"], stranger.workspace)
    assert client.get("/api/v1/credentials", headers=bearer(token)).get_json()["data"] == []
    resp = client.delete(f"/api/v1/credentials/{credential.id}", headers=bearer(token))
    assert resp.status_code == 404 and resp.get_json()["error"]["code"] == "not_found"
    assert client.delete(f"/api/v1/credentials/{2**63}", headers=bearer(token)).status_code == 404
    assert len(service.list_credentials(team.workspace)) == 1


def test_no_token_is_a_401(client, db):
    assert client.get("/api/v1/credentials").status_code == 401
    assert client.post("/api/v1/credentials", json={"provider": "hunter", "secret": SECRET}).status_code == 401


def test_an_admin_api_key_may_list_but_not_change_keys(client, db, team):
    credential = service.create_credential(team.workspace, team["owner"], "hunter", SECRET)
    _, plaintext = ws_service.create_api_key(team.workspace, team["owner"], name="ops", role="admin")
    listed = client.get("/api/v1/credentials", headers=bearer(plaintext))
    assert listed.status_code == 200 and listed.get_json()["data"][0]["masked"] == "••••aa57"
    resp = client.post("/api/v1/credentials", json={"provider": "apollo", "secret": SECRET}, headers=bearer(plaintext))
    assert resp.status_code == 403
    assert client.delete(f"/api/v1/credentials/{credential.id}", headers=bearer(plaintext)).status_code == 403
    assert len(service.list_credentials(team.workspace)) == 1


def test_operations_are_documented_with_their_permissions(app):
    from morket.api.routing import OPERATIONS

    ours = {(op.method, op.path): op for op in OPERATIONS if op.tag == "Credentials"}
    assert {key: op.permission for key, op in ours.items()} == {
        ("GET", "/api/v1/credentials"): "credentials.view",
        ("POST", "/api/v1/credentials"): "credentials.manage",
        ("DELETE", "/api/v1/credentials/{credential_id}"): "credentials.manage",
    }
    schema = ours[("POST", "/api/v1/credentials")].body.model_json_schema()
    assert schema["required"] == ["provider", "secret"]
