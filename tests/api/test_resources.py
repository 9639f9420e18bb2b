"""Workspace resources over the API: roles, tenant isolation, API keys, bodies, CORS and limits."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from morket.core.db import utcnow
from morket.workspaces.models import ApiKey, Invitation, Membership
from tests.api.conftest import bearer


def _membership(db, workspace, user) -> Membership:
    return db.session.scalar(
        select(Membership).where(Membership.workspace_id == workspace.id, Membership.user_id == user.id)
    )


@pytest.fixture
def owner_headers(team, login_api):
    return bearer(login_api(team.owner, team.workspace)["access_token"])


def _create_key(client, headers, role="member", name="CRM sync") -> dict:
    resp = client.post("/api/v1/api-keys", json={"name": name, "role": role}, headers=headers)
    assert resp.status_code == 201, resp.get_json()
    return resp.get_json()["data"]


def test_workspace_read_and_rename_by_an_admin(client, team, login_api):
    headers = bearer(login_api(team.admin, team.workspace)["access_token"])
    assert client.get("/api/v1/workspace", headers=headers).get_json()["data"]["slug"] == team.workspace.slug
    resp = client.patch("/api/v1/workspace", json={"name": "  Acme Growth  "}, headers=headers)
    assert resp.status_code == 200
    assert resp.get_json()["data"]["name"] == "Acme Growth"
    assert client.get("/api/v1/workspace", headers=headers).get_json()["data"]["name"] == "Acme Growth"


def test_viewer_cannot_rename_the_workspace(client, team, login_api):
    headers = bearer(login_api(team.viewer, team.workspace)["access_token"])
    resp = client.patch("/api/v1/workspace", json={"name": "Mine now"}, headers=headers)
    assert resp.status_code == 403
    assert resp.get_json()["error"]["code"] == "forbidden"
    assert client.get("/api/v1/workspace", headers=headers).get_json()["data"]["name"] == team.workspace.name


def test_members_list_change_role_and_remove(client, db, team, owner_headers):
    members = client.get("/api/v1/members", headers=owner_headers).get_json()["data"]
    assert [m["role"] for m in members] == ["owner", "admin", "member", "viewer"]
    target_id = _membership(db, team.workspace, team.member).id
    member_email = team.member.email
    resp = client.patch(f"/api/v1/members/{target_id}", json={"role": "viewer"}, headers=owner_headers)
    assert resp.status_code == 200
    assert resp.get_json()["data"]["role"] == "viewer"
    resp = client.delete(f"/api/v1/members/{target_id}", headers=owner_headers)
    assert resp.status_code == 200
    assert resp.get_json()["data"] == {"id": target_id, "deleted": True}
    emails = {m["user"]["email"] for m in client.get("/api/v1/members", headers=owner_headers).get_json()["data"]}
    assert member_email not in emails


def test_removed_member_token_stops_at_once(client, db, team, owner_headers, login_api):
    member_headers = bearer(login_api(team.member, team.workspace)["access_token"])
    target = _membership(db, team.workspace, team.member)
    assert client.delete(f"/api/v1/members/{target.id}", headers=owner_headers).status_code == 200
    assert client.get("/api/v1/me", headers=member_headers).status_code == 401


def test_another_workspaces_member_ids_answer_404(client, db, team, other_team, login_api):
    headers = bearer(login_api(other_team.owner, other_team.workspace)["access_token"])
    victim = _membership(db, team.workspace, team.admin)
    assert client.patch(f"/api/v1/members/{victim.id}", json={"role": "viewer"}, headers=headers).status_code == 404
    assert client.delete(f"/api/v1/members/{victim.id}", headers=headers).status_code == 404
    db.session.expire_all()
    assert _membership(db, team.workspace, team.admin).role == "admin"


def test_another_workspaces_api_key_answers_404(client, team, other_team, owner_headers, login_api):
    key = _create_key(client, owner_headers)
    other = bearer(login_api(other_team.owner, other_team.workspace)["access_token"])
    assert client.delete(f"/api/v1/api-keys/{key['id']}", headers=other).status_code == 404
    listed = client.get("/api/v1/api-keys", headers=other).get_json()["data"]
    assert key["id"] not in {k["id"] for k in listed}


def test_invitations_create_and_list(client, db, team, owner_headers):
    resp = client.post(
        "/api/v1/invitations", json={"email": "grace@example.com", "role": "viewer"}, headers=owner_headers
    )
    assert resp.status_code == 201, resp.get_json()
    assert resp.get_json()["data"]["email"] == "grace@example.com"
    listed = client.get("/api/v1/invitations", headers=owner_headers).get_json()["data"]
    assert [i["email"] for i in listed] == ["grace@example.com"]
    assert db.session.scalar(select(Invitation).where(Invitation.workspace_id == team.workspace.id)) is not None
    dup = client.post("/api/v1/invitations", json={"email": team.member.email}, headers=owner_headers)
    assert dup.status_code == 409
    bad = client.post("/api/v1/invitations", json={"email": "not-an-email"}, headers=owner_headers)
    assert bad.status_code == 422
    assert "email" in bad.get_json()["error"]["fields"]


def test_api_key_authenticates_as_the_workspace_with_its_role(client, db, team, owner_headers):
    created = _create_key(client, owner_headers, role="viewer")
    assert created["key"].startswith("mk_live_")
    assert "key" not in client.get("/api/v1/api-keys", headers=owner_headers).get_json()["data"][0]
    key_headers = bearer(created["key"])
    me = client.get("/api/v1/me", headers=key_headers)
    assert me.status_code == 200
    data = me.get_json()["data"]
    assert data["principal"] == "api_key" and data["role"] == "viewer" and data["user"] is None
    assert data["workspace"]["id"] == team.workspace.id
    assert client.patch("/api/v1/workspace", json={"name": "x"}, headers=key_headers).status_code == 403
    row = db.session.get(ApiKey, created["id"])
    db.session.refresh(row)
    assert row.last_used_at is not None


def test_api_key_last_used_at_is_written_at_most_once_a_minute(client, db, team, owner_headers):
    created = _create_key(client, owner_headers)
    row = db.session.get(ApiKey, created["id"])
    recent = utcnow() - timedelta(seconds=20)
    row.last_used_at = recent
    db.session.flush()
    client.get("/api/v1/me", headers=bearer(created["key"]))
    db.session.refresh(row)
    assert row.last_used_at == recent
    row.last_used_at = utcnow() - timedelta(minutes=5)
    db.session.flush()
    client.get("/api/v1/me", headers=bearer(created["key"]))
    db.session.refresh(row)
    assert row.last_used_at > recent


def test_revoked_api_key_is_refused(client, team, owner_headers):
    created = _create_key(client, owner_headers)
    resp = client.delete(f"/api/v1/api-keys/{created['id']}", headers=owner_headers)
    assert resp.status_code == 200
    assert resp.get_json()["data"]["revoked_at"] is not None
    refused = client.get("/api/v1/me", headers=bearer(created["key"]))
    assert refused.status_code == 401
    assert refused.get_json()["error"]["code"] == "unauthorized"
    assert client.get("/api/v1/me", headers=bearer(created["key"] + "x")).status_code == 401


def test_admin_key_cannot_manage_members_or_keys(client, db, team, owner_headers):
    key_headers = bearer(_create_key(client, owner_headers, role="admin")["key"])
    target = _membership(db, team.workspace, team.viewer)
    resp = client.patch(f"/api/v1/members/{target.id}", json={"role": "admin"}, headers=key_headers)
    assert resp.status_code == 403
    assert client.post("/api/v1/api-keys", json={"name": "k"}, headers=key_headers).status_code == 403
    assert client.get("/api/v1/members", headers=key_headers).status_code == 200


def test_json_body_over_the_limit_is_413(app, client, owner_headers):
    limit = app.config["MORKET"]["MAX_JSON_BYTES"]
    body = '{"name": "' + "x" * limit + '"}'
    resp = client.patch("/api/v1/workspace", data=body, content_type="application/json", headers=owner_headers)
    assert resp.status_code == 413
    assert resp.get_json()["error"]["code"] == "payload_too_large"


@pytest.mark.parametrize(
    "body,status",
    [
        ('{"name": ', 400),
        ("\xff\xfe", 400),
        ("[1, 2]", 422),
        ('"just a string"', 422),
        ("null", 422),
        ('{"name": 5}', 422),
        ('{"name": ""}', 422),
        ('{"name": "ok", "extra": 1}', 422),
        ('{"name": "nul \\u0000 inside"}', 422),
        ("", 422),
    ],
)
def test_malformed_bodies_get_an_envelope_never_a_500(client, owner_headers, body, status):
    resp = client.patch("/api/v1/workspace", data=body, content_type="application/json", headers=owner_headers)
    assert resp.status_code == status
    payload = resp.get_json()
    assert payload["success"] is False and payload["error"]["code"] in {"invalid_json", "validation_error"}


def test_validation_errors_name_the_fields(client, owner_headers):
    resp = client.post("/api/v1/api-keys", json={"role": "emperor"}, headers=owner_headers)
    assert resp.status_code == 422
    fields = resp.get_json()["error"]["fields"]
    assert set(fields) == {"name", "role"}
    assert all(isinstance(messages, list) and messages for messages in fields.values())


def test_unknown_api_paths_and_methods_get_envelopes(client, owner_headers):
    resp = client.get("/api/v1/nothing-here", headers=owner_headers)
    assert resp.status_code == 404
    assert resp.get_json()["error"]["code"] == "not_found"
    resp = client.put("/api/v1/workspace", json={}, headers=owner_headers)
    assert resp.status_code == 405
    assert resp.get_json()["success"] is False
    assert client.get("/api/v1/members/99999999999999999999", headers=owner_headers).status_code in (404, 405)
    huge = client.delete("/api/v1/members/99999999999999999999", headers=owner_headers)
    assert huge.status_code == 404


def test_cors_allows_only_configured_origins(app, db, services):
    from morket import create_app

    cors_app = create_app(
        {
            "SQLALCHEMY_DATABASE_URI": app.config["SQLALCHEMY_DATABASE_URI"],
            "REDIS_URL": services["redis"],
            "TESTING": True,
            "MORKET": {"ENV": "test", "CORS_ORIGINS": ["https://app.example.com"]},
        }
    )
    client = cors_app.test_client()
    allowed = client.options(
        "/api/v1/me", headers={"Origin": "https://app.example.com", "Access-Control-Request-Method": "GET"}
    )
    assert allowed.status_code == 204
    assert allowed.headers["Access-Control-Allow-Origin"] == "https://app.example.com"
    assert "Authorization" in allowed.headers["Access-Control-Allow-Headers"]
    denied = client.get("/api/v1/me", headers={"Origin": "https://evil.example.com"})
    assert "Access-Control-Allow-Origin" not in denied.headers
    ok = client.get("/api/v1/openapi.json", headers={"Origin": "https://app.example.com"})
    assert ok.headers["Access-Control-Allow-Origin"] == "https://app.example.com"


def test_auth_endpoints_are_limited_to_five_a_minute_per_ip(client, db):
    payload = {"email": "nobody@example.com", "password": "x", "workspace": "w"}
    statuses = [
        client.post("/api/v1/auth/token", json=payload, environ_base={"REMOTE_ADDR": "10.7.0.1"}).status_code
        for _ in range(5)
    ]
    assert statuses == [401] * 5
    limited = client.post("/api/v1/auth/token", json=payload, environ_base={"REMOTE_ADDR": "10.7.0.1"})
    assert limited.status_code == 429
    assert int(limited.headers["Retry-After"]) > 0
    assert limited.get_json()["error"]["code"] == "rate_limited"
    elsewhere = client.post("/api/v1/auth/token", json=payload, environ_base={"REMOTE_ADDR": "10.7.0.2"})
    assert elsewhere.status_code == 401


def test_general_limit_is_per_principal(client, team, owner_headers, login_api):
    statuses = [client.get("/api/v1/me", headers=owner_headers).status_code for _ in range(101)]
    assert statuses[:100] == [200] * 100
    assert statuses[100] == 429
    other = bearer(login_api(team.member, team.workspace)["access_token"])
    assert client.get("/api/v1/me", headers=other).status_code == 200
