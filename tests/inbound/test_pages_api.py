"""The inbound source pages and JSON API: secrets shown once, mapping, samples, replay, roles and tenants."""

from __future__ import annotations

import re

from morket.api.tokens import encode_access_token
from morket.inbound import service
from morket.inbound.models import InboundFailure, InboundSource
from tests.factories import MembershipFactory, csrf_token, login, workspace_with_owner
from tests.inbound.conftest import post, table_rows


def _bearer(user, workspace, role: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {encode_access_token(user.id, workspace.id, role)}"}


def test_creating_a_source_on_the_page_shows_the_secret_once(client, db, team):
    workspace, owner, table = team
    login(client, owner)
    base = f"/w/{workspace.slug}/tables/{table.id}/inbound"
    page = client.get(base)
    assert page.status_code == 200 and "No inbound sources yet" in page.get_data(as_text=True)
    token = csrf_token(client, base)
    resp = client.post(base, data={"csrf_token": token, "name": "Signup form"})
    html = resp.get_data(as_text=True)
    assert resp.status_code == 201 and resp.headers["Cache-Control"] == "no-store"
    secret = re.search(r'id="inbound-secret-value">(whsec_[^<]+)<', html).group(1)
    source = db.session.scalar(db.select(InboundSource).where(InboundSource.table_id == table.id))
    assert service.source_secret(source) == secret and source.token in html
    again = client.get(f"{base}/{source.id}").get_data(as_text=True)
    assert secret not in again and source.token in again
    blank = client.post(base, data={"csrf_token": token, "name": "  "})
    assert blank.status_code == 422


def test_mapping_sample_columns_and_replay_on_the_page(client, db, team, source):
    workspace, owner, table = team
    made, secret = source
    login(client, owner)
    page = f"/w/{workspace.slug}/tables/{table.id}/inbound/{made.id}"
    token = csrf_token(client, page)
    assert post(client, made, {"contact": {"mail": "r@x.io", "city": "Lyon"}}, secret=secret).status_code == 422
    # The refused payload is listed; the last payload is the sample, whose unmapped fields are offered.
    html = client.get(page).get_data(as_text=True)
    assert "Refused payloads" in html and "unmapped" in html and "contact.city" in html
    bad = client.post(f"{page}/mapping", data={"csrf_token": token, f"path_{table.live_columns[0].id}": "$[[["})
    assert bad.status_code == 422 and "not a JSON path" in bad.get_data(as_text=True)
    email = table.live_columns[0]
    ok = client.post(
        f"{page}/mapping", data={"csrf_token": token, f"path_{email.id}": "contact.mail", "rate_per_minute": "60"}
    )
    assert ok.status_code == 303
    added = client.post(f"{page}/columns", data={"csrf_token": token, "field": ["contact.city"]})
    assert added.status_code == 303
    (kept,) = db.session.scalars(db.select(InboundFailure).where(InboundFailure.source_id == made.id))
    replayed = client.post(f"{page}/failures/{kept.id}/replay", data={"csrf_token": token})
    assert replayed.status_code == 303
    rows = table_rows(workspace, owner, table)
    assert rows == [{"Email": "r@x.io", "Name": None, "Employees": None, "contact city": "Lyon"}]
    preview = client.get(page).get_data(as_text=True)
    assert 'id="preview-table"' in preview and "Lyon" in preview and "No refused payloads" in preview


def test_a_viewer_sees_status_only(client, db, team, source):
    workspace, _owner, table = team
    made, _secret = source
    viewer = MembershipFactory(workspace=workspace, role="viewer").user
    login(client, viewer)
    html = client.get(f"/w/{workspace.slug}/tables/{table.id}/inbound/{made.id}").get_data(as_text=True)
    assert "Recent receipts" in html and "Save mapping" not in html and "Refused payloads" not in html
    token = csrf_token(client, f"/w/{workspace.slug}/tables/{table.id}/inbound")
    refused = client.post(f"/w/{workspace.slug}/tables/{table.id}/inbound/{made.id}/rotate", data={"csrf_token": token})
    assert refused.status_code == 403


def test_the_pulse_changes_when_rows_arrive(client, db, team, source):
    workspace, owner, table = team
    made, secret = source
    login(client, owner)
    url = f"/w/{workspace.slug}/tables/{table.id}/inbound/pulse"
    before = client.get(url).get_json()["stamp"]
    assert post(client, made, {"email": "p@x.io"}, secret=secret).status_code == 200
    after = client.get(url).get_json()["stamp"]
    assert before != after and after.startswith("1:")
    grid = client.get(f"/w/{workspace.slug}/tables/{table.id}").get_data(as_text=True)
    assert f'data-pulse-url="{url}"' in grid and "Receive webhooks" in grid


def test_the_api_creates_reads_updates_rotates_and_deletes(client, db, team):
    workspace, owner, table = team
    headers = _bearer(owner, workspace, "owner")
    created = client.post(f"/api/v1/tables/{table.id}/inbound-sources", json={"name": "CRM"}, headers=headers)
    assert created.status_code == 201
    data = created.get_json()["data"]
    secret, source_id = data["secret"], data["id"]
    assert data["url"].endswith("/api/v1/hooks/in/" + data["url"].rsplit("/", 1)[1])
    read = client.get(f"/api/v1/inbound-sources/{source_id}", headers=headers).get_json()["data"]
    assert "secret" not in read and secret not in str(read)
    bad = client.patch(
        f"/api/v1/inbound-sources/{source_id}", json={"columns": {"Email": "$[[", "Nope": "$.x"}}, headers=headers
    )
    assert bad.status_code == 422 and {"columns.Email", "columns.Nope"} <= set(bad.get_json()["error"]["fields"])
    ok = client.patch(
        f"/api/v1/inbound-sources/{source_id}",
        json={"columns": {"Email": "$.email"}, "upsert_column_id": table.live_columns[0].id},
        headers=headers,
    )
    assert ok.status_code == 200 and ok.get_json()["data"]["columns"] == {str(table.live_columns[0].id): "$.email"}
    rotated = client.post(f"/api/v1/inbound-sources/{source_id}/rotate-secret", headers=headers).get_json()["data"]
    assert rotated["secret"] != secret
    source = db.session.get(InboundSource, source_id)
    assert post(client, source, {"email": "x"}, secret=rotated["secret"]).status_code == 422
    failures = client.get(f"/api/v1/inbound-sources/{source_id}/failures", headers=headers).get_json()["data"]
    assert failures[0]["code"] == "invalid_value" and failures[0]["body"] == '{"email": "x"}'
    still = client.post(f"/api/v1/inbound-sources/{source_id}/failures/{failures[0]['id']}/replay", headers=headers)
    assert still.status_code == 422
    address = f"/api/v1/hooks/in/{source.token}"
    assert client.delete(f"/api/v1/inbound-sources/{source_id}", headers=headers).status_code == 200
    gone = client.post(address, json={"email": "a@x.io"}, headers={"X-Morket-Secret": rotated["secret"]})
    assert gone.status_code == 404


def test_the_api_keeps_tenants_and_roles_apart(client, db, team, source):
    workspace, _owner, table = team
    made, _secret = source
    other_ws, other_owner = workspace_with_owner(name="Elsewhere")
    theirs = _bearer(other_owner, other_ws, "owner")
    assert client.get(f"/api/v1/inbound-sources/{made.id}", headers=theirs).status_code == 404
    assert client.get(f"/api/v1/tables/{table.id}/inbound-sources", headers=theirs).status_code == 404
    assert client.post(f"/api/v1/inbound-sources/{made.id}/rotate-secret", headers=theirs).status_code == 404
    viewer = MembershipFactory(workspace=workspace, role="viewer").user
    as_viewer = _bearer(viewer, workspace, "viewer")
    assert client.get(f"/api/v1/inbound-sources/{made.id}", headers=as_viewer).status_code == 200
    assert client.get(f"/api/v1/inbound-sources/{made.id}/failures", headers=as_viewer).status_code == 403
    assert client.delete(f"/api/v1/inbound-sources/{made.id}", headers=as_viewer).status_code == 403
