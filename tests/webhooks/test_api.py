"""Webhooks over the JSON API: create (secret once), list without secrets, deliveries, roles, tenancy."""

from __future__ import annotations

from morket.webhooks import service
from morket.workspaces import service as ws_service
from tests.credentials.conftest import bearer


def test_create_list_rotate_and_deliveries(client, db, team, access_token, hook_settings, receiver, run_jobs):
    token = access_token(team["admin"], team.workspace)
    resp = client.post(
        "/api/v1/webhooks",
        json={"url": receiver.url, "event_types": ["row.created", "export.finished"], "description": "Ops"},
        headers=bearer(token),
    )
    assert resp.status_code == 201, resp.get_json()
    data = resp.get_json()["data"]
    secret = data["secret"]
    assert secret.startswith("whsec_") and data["event_types"] == ["row.created", "export.finished"]
    listed = client.get("/api/v1/webhooks", headers=bearer(token))
    assert secret not in listed.get_data(as_text=True) and "secret" not in listed.get_json()["data"][0]
    one = client.get(f"/api/v1/webhooks/{data['id']}", headers=bearer(token))
    assert one.status_code == 200 and secret not in one.get_data(as_text=True)
    rotated = client.post(f"/api/v1/webhooks/{data['id']}/rotate-secret", headers=bearer(token)).get_json()["data"]
    assert rotated["secret"] != secret and rotated["previous_secret_expires_at"]
    test = client.post(f"/api/v1/webhooks/{data['id']}/test", headers=bearer(token))
    assert test.status_code == 202 and test.get_json()["data"]["status"] == "pending"
    run_jobs()
    deliveries = client.get(f"/api/v1/webhooks/{data['id']}/deliveries", headers=bearer(token)).get_json()["data"]
    assert [(d["event_type"], d["status"]) for d in deliveries] == [("webhook.test", "succeeded")]
    assert deliveries[0]["attempts"][0]["status_code"] == 200
    assert deliveries[0]["event_id"] == receiver.received[0].headers["webhook-id"]
    again = client.post(f"/api/v1/webhooks/deliveries/{deliveries[0]['id']}/redeliver", headers=bearer(token))
    assert again.status_code == 202
    patched = client.patch(f"/api/v1/webhooks/{data['id']}", json={"enabled": False}, headers=bearer(token))
    assert patched.status_code == 200 and patched.get_json()["data"]["enabled"] is False
    gone = client.delete(f"/api/v1/webhooks/{data['id']}", headers=bearer(token))
    assert gone.get_json()["data"] == {"id": data["id"], "deleted": True}


def test_bad_bodies_are_422_and_write_nothing(client, db, team, access_token, hook_settings):
    token = access_token(team["owner"], team.workspace)
    for body, field in [
        ({"url": "https://93.184.216.34/h", "event_types": []}, "event_types"),
        ({"url": "https://93.184.216.34/h", "event_types": ["row.exploded"]}, "event_types"),
        ({"url": "https://169.254.169.254/latest", "event_types": ["row.created"]}, "url"),
        ({"url": "ftp://example.com/h", "event_types": ["row.created"]}, "url"),
        ({"url": "https://user:pw@93.184.216.34/h", "event_types": ["row.created"]}, "url"),
        ({"url": "https://93.184.216.34/h", "event_types": ["row.created"], "extra": 1}, "extra"),
    ]:
        resp = client.post("/api/v1/webhooks", json=body, headers=bearer(token))
        assert resp.status_code == 422, (body, resp.get_json())
        assert field in str(resp.get_json()["error"]), (body, resp.get_json())
    assert service.list_endpoints(team.workspace) == []


def test_roles_tenancy_and_api_keys(client, db, team, stranger, access_token, hook_settings):
    endpoint, _ = service.create_endpoint(team.workspace, team["admin"], "https://93.184.216.34/h", ["row.created"])
    db.session.flush()
    for role in ("member", "viewer"):
        token = access_token(team[role], team.workspace)
        assert client.get("/api/v1/webhooks", headers=bearer(token)).status_code == 403
        assert client.get(f"/api/v1/webhooks/{endpoint.id}/deliveries", headers=bearer(token)).status_code == 403
    other = access_token(stranger["owner"], stranger.workspace)
    assert client.get(f"/api/v1/webhooks/{endpoint.id}", headers=bearer(other)).status_code == 404
    assert client.delete(f"/api/v1/webhooks/{endpoint.id}", headers=bearer(other)).status_code == 404
    assert client.get("/api/v1/webhooks", headers=bearer(other)).get_json()["data"] == []
    _, key = ws_service.create_api_key(team.workspace, team["owner"], name="ops", role="admin")
    listed = client.get("/api/v1/webhooks", headers=bearer(key))
    assert listed.status_code == 200 and len(listed.get_json()["data"]) == 1
    made = client.post(
        "/api/v1/webhooks", json={"url": "https://93.184.216.34/x", "event_types": ["row.created"]}, headers=bearer(key)
    )
    assert made.status_code == 403


def test_openapi_documents_the_webhook_operations(client, db):
    doc = client.get("/api/v1/openapi.json").get_json()
    assert "/api/v1/webhooks" in doc["paths"] and "/api/v1/webhooks/{endpoint_id}/deliveries" in doc["paths"]
    assert "secret" in str(doc["components"]["schemas"]["EndpointWithSecret"])
