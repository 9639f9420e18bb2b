"""CSV imports over the JSON API: upload, start, poll, the decision on error rows, roles and tenancy."""

from __future__ import annotations

import io

import pytest
from werkzeug.datastructures import FileStorage
from werkzeug.test import encode_multipart

from morket.tables import service as tables
from tests.api.conftest import bearer, make_team


@pytest.fixture
def teams(db, data_dir):
    return make_team(), make_team()


@pytest.fixture
def token(client):
    def _token(user, workspace) -> str:
        resp = client.post(
            "/api/v1/auth/token",
            json={"email": user.email, "password": "correct horse battery", "workspace": workspace.slug},
        )
        return resp.get_json()["data"]["access_token"]

    return _token


def _upload(client, access: str, data: bytes, name: str = "api.csv"):
    boundary, body = encode_multipart({"file": FileStorage(io.BytesIO(data), name)})
    return client.post(
        "/api/v1/imports",
        data=body,
        content_type=f"multipart/form-data; boundary={boundary}",
        headers=bearer(access),
    )


def test_upload_start_and_poll(client, db, teams, token, run_jobs):
    team, _ = teams
    access = token(team.member, team.workspace)
    resp = _upload(client, access, b"company|seats\nAcme|3\nBeta|oops\n")
    assert resp.status_code == 201, resp.get_json()
    data = resp.get_json()["data"]
    assert (data["delimiter"], data["header"], data["detected_types"]) == ("|", ["company", "seats"], ["text", "text"])
    run_id = data["id"]
    mapping = [
        {"source": 0, "target": "new", "type": "text"},
        {"source": 1, "target": "new", "type": "number", "name": "Seats"},
    ]
    resp = client.post(
        f"/api/v1/imports/{run_id}/start", json={"mapping": mapping, "table_name": "API"}, headers=bearer(access)
    )
    assert resp.status_code == 202 and resp.get_json()["data"]["status"] == "queued"
    run_jobs()
    data = client.get(f"/api/v1/imports/{run_id}", headers=bearer(access)).get_json()["data"]
    assert data["status"] == "needs_review" and data["error_count"] == 1
    assert client.post(f"/api/v1/imports/{run_id}/continue", headers=bearer(access)).status_code == 202
    run_jobs()
    data = client.get(f"/api/v1/imports/{run_id}", headers=bearer(access)).get_json()["data"]
    assert data["status"] == "done" and data["rows_out"] == 1
    table = tables.get_table_or_404(team.workspace, data["table_id"])
    assert [r.cells for r in tables.read_window(team.workspace, team.member, table, None, 0, 5)] == [("Acme", 3)]


def test_bad_requests_are_clear(client, db, teams, token):
    team, _ = teams
    access = token(team.member, team.workspace)
    resp = client.post("/api/v1/imports", json={"file": "nope"}, headers=bearer(access))
    assert resp.status_code == 422 and "field named file" in resp.get_json()["error"]["message"]
    resp = _upload(client, access, b"")
    assert resp.status_code == 422 and "empty" in resp.get_json()["error"]["message"]
    run_id = _upload(client, access, b"a\n1\n").get_json()["data"]["id"]
    resp = client.post(f"/api/v1/imports/{run_id}/start", json={"mapping": [{"source": 5}]}, headers=bearer(access))
    assert resp.status_code == 422


def test_viewers_cannot_upload_and_other_workspaces_get_404(client, db, teams, token):
    team, other = teams
    assert _upload(client, token(team.viewer, team.workspace), b"a\n1\n").status_code == 403
    run_id = _upload(client, token(team.member, team.workspace), b"a\n1\n").get_json()["data"]["id"]
    outsider = token(other.owner, other.workspace)
    assert client.get(f"/api/v1/imports/{run_id}", headers=bearer(outsider)).status_code == 404
    assert client.post(f"/api/v1/imports/{run_id}/cancel", headers=bearer(outsider)).status_code == 404
