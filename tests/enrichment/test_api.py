"""Enrichment over the JSON API: columns, runs, cells, attempts, roles, tenancy and signed callbacks."""

from __future__ import annotations

import hashlib
import hmac
import json
from typing import Any

import pytest
import sqlalchemy as sa

from morket.api.tokens import encode_access_token
from morket.credits import service as credits
from morket.enrichment import executor
from morket.enrichment.models import EnrichmentRun, EnrichmentRunRow
from morket.extensions import db as _db
from morket.providers.sandboxes import data
from morket.tables import service as tables
from morket.workspaces import service as ws_service
from morket.workspaces.models import Membership
from tests.enrichment.test_engine_support import finish_run
from tests.factories import UserFactory, workspace_with_owner

PEOPLE = (
    {"name": "First name", "type": "text"},
    {"name": "Last name", "type": "text"},
    {"name": "Domain", "type": "domain"},
    {"name": "Email", "type": "email"},
)
FIRST = ("Ada", "Grace", "Alan", "Edsger", "Barbara")


@pytest.fixture
def team(db, quick):
    """A workspace with credits, its owner, a viewer, and a table of 8 people."""
    workspace, owner = workspace_with_owner()
    credits.grant(workspace.id, 500, idempotency_key=f"test-{workspace.id}")
    viewer = UserFactory()
    _db.session.add(Membership(workspace_id=workspace.id, user_id=viewer.id, role="viewer"))
    table = tables.create_table(workspace, owner, "People", columns=PEOPLE)
    rows = [{"First name": FIRST[i % 5], "Last name": f"Roe{i}", "Domain": f"corp{i}.example.org"} for i in range(8)]
    row_ids = tables.insert_rows(workspace, owner, table, rows)
    ids = {c.name: c.id for c in table.live_columns}
    return workspace, owner, viewer, table, ids, rows, row_ids


def _auth(user, workspace, role: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {encode_access_token(user.id, workspace.id, role)}"}


def _body(ids: dict[str, int], **extra: Any) -> dict[str, Any]:
    body = {
        "name": "Work email",
        "steps": [{"operation": "hunter.email_finder"}, {"operation": "apollo.people_match"}],
        "target": "email",
        "inputs": {"first_name": ids["First name"], "last_name": ids["Last name"], "domain": ids["Domain"]},
        "outputs": [{"field": "title", "new_column": "Title"}],
        "validation": {"operation": "hunter.email_verifier", "accept": ["valid", "accept_all"]},
    }
    body.update(extra)
    return body


def test_columns_runs_cells_and_attempts(client, db, team):
    workspace, owner, viewer, table, ids, rows, row_ids = team
    auth = _auth(owner, workspace, "owner")
    base = f"/api/v1/tables/{table.id}/enrichment-columns"
    created = client.post(base, json=_body(ids), headers=auth)
    assert created.status_code == 201, created.get_json()
    column = created.get_json()["data"]
    assert column["validation"]["operation"] == "hunter.email_verifier"
    title_id = column["outputs"][0]["column_id"]
    assert [c["id"] for c in client.get(base, headers=auth).get_json()["data"]] == [column["id"]]
    assert client.get(f"{base}/{column['id']}", headers=auth).get_json()["data"]["name"] == "Work email"

    estimate = client.post(f"{base}/{column['id']}/estimate", json={"scope": "all"}, headers=auth).get_json()["data"]
    assert estimate["rows"] == 8 and estimate["balance"] == 500 and estimate["max_credits"] > 0
    started = client.post(f"{base}/{column['id']}/runs", json={"scope": "all", "confirm": True}, headers=auth)
    assert started.status_code == 202, started.get_json()
    run_id = started.get_json()["data"]["id"]
    run = finish_run(run_id)
    status = client.get(f"/api/v1/enrichment/runs/{run_id}", headers=auth).get_json()["data"]
    assert status["status"] == "completed" and status["remaining"] == 0 and status["done"] == 8
    assert status["credits_used"] == run.credits_used == 500 - credits.balance(workspace.id)
    listed = client.get(f"/api/v1/enrichment/runs?table_id={table.id}", headers=auth).get_json()["data"]
    assert [r["id"] for r in listed] == [run_id]

    ids_param = ",".join(str(r) for r in row_ids)
    cells = client.get(f"{base}/{column['id']}/cells?row_ids={ids_param}", headers=auth).get_json()["data"]
    assert [c["row_id"] for c in cells] == row_ids
    for cell in cells:
        assert cell["status"] in {"success", "no_data"}
        if cell["status"] == "success":
            assert "@" in cell["value"] and cell["provider"] in {"hunter", "apollo"}
    assert any(c["status"] == "success" for c in cells)
    attempts = client.get(f"/api/v1/enrichment/runs/{run_id}/attempts", headers=auth).get_json()["data"]
    assert {a["operation"] for a in attempts} >= {"hunter.email_finder"}
    # The workspace pays once per delivered value (finder + verifier); attempts keep what each call
    # cost at the provider, rejected values included, so they add up to at least that.
    delivered = sum(1 for c in cells if c["status"] == "success")
    assert run.credits_used == 3 * delivered <= sum(a["cost"] for a in attempts)
    one = client.get(f"/api/v1/enrichment/runs/{run_id}/attempts?row_id={row_ids[0]}", headers=auth).get_json()
    assert {a["row_id"] for a in one["data"]} == {row_ids[0]}
    # The title output column was created and typed as text.
    assert any(c.id == title_id for c in tables.get_table_or_404(workspace, table.id).live_columns)

    updated = client.put(f"{base}/{column['id']}", json=_body(ids, name="Email (work)", outputs=[]), headers=auth)
    assert updated.status_code == 200 and updated.get_json()["data"]["name"] == "Email (work)"
    cancelled = client.post(f"/api/v1/enrichment/runs/{run_id}/cancel", headers=auth)
    assert cancelled.status_code == 409 and run.status == "completed"


def test_bad_bodies_are_422_with_a_reason(client, db, team):
    workspace, owner, _viewer, table, ids, _rows, _ = team
    auth = _auth(owner, workspace, "owner")
    base = f"/api/v1/tables/{table.id}/enrichment-columns"
    resp = client.post(base, json=_body(ids, target="organization"), headers=auth)
    assert resp.status_code == 422 and "does not deliver" in resp.get_json()["error"]["message"]
    resp = client.post(base, json={**_body(ids), "colour": "red"}, headers=auth)
    assert resp.status_code == 422 and "colour" in resp.get_json()["error"]["fields"]
    resp = client.post(base, data="{", headers={**auth, "Content-Type": "application/json"})
    assert resp.status_code == 400
    column_id = client.post(base, json=_body(ids), headers=auth).get_json()["data"]["id"]
    resp = client.post(f"{base}/{column_id}/runs", json={"scope": "selected"}, headers=auth)
    assert resp.status_code == 422
    assert client.get(f"{base}/{column_id}/cells?row_ids=1;2", headers=auth).status_code == 422
    # A plain column is not an enrichment column.
    assert client.get(f"{base}/{ids['Domain']}", headers=auth).status_code == 404
    assert len(tables.get_table_or_404(workspace, table.id).live_columns) == 6


def test_confirmation_is_required_above_the_threshold(client, db, team, quick):
    workspace, owner, _viewer, table, ids, _rows, _ = team
    quick["ENRICHMENT_CONFIRM_CREDITS"] = 3
    auth = _auth(owner, workspace, "owner")
    base = f"/api/v1/tables/{table.id}/enrichment-columns"
    column_id = client.post(base, json=_body(ids), headers=auth).get_json()["data"]["id"]
    assert client.post(f"{base}/{column_id}/estimate", json={}, headers=auth).get_json()["data"]["needs_confirmation"]
    resp = client.post(f"{base}/{column_id}/runs", json={"scope": "all"}, headers=auth)
    assert resp.status_code == 409 and resp.get_json()["error"]["code"] == "confirmation_required"
    assert db.session.scalar(sa.select(sa.func.count()).select_from(EnrichmentRun)) == 0


def test_viewers_read_but_cannot_configure_start_or_cancel(client, db, team):
    workspace, owner, viewer, table, ids, _rows, _ = team
    owner_auth, auth = _auth(owner, workspace, "owner"), _auth(viewer, workspace, "viewer")
    base = f"/api/v1/tables/{table.id}/enrichment-columns"
    column_id = client.post(base, json=_body(ids), headers=owner_auth).get_json()["data"]["id"]
    started = client.post(f"{base}/{column_id}/runs", json={"confirm": True}, headers=owner_auth)
    run_id = started.get_json()["data"]["id"]
    assert client.get(base, headers=auth).status_code == 200
    assert client.get(f"/api/v1/enrichment/runs/{run_id}", headers=auth).status_code == 200
    assert client.post(base, json=_body(ids, name="Mine"), headers=auth).status_code == 403
    assert client.put(f"{base}/{column_id}", json=_body(ids), headers=auth).status_code == 403
    assert client.post(f"{base}/{column_id}/runs", json={"confirm": True}, headers=auth).status_code == 403
    assert client.post(f"{base}/{column_id}/estimate", json={}, headers=auth).status_code == 403
    assert client.post(f"/api/v1/enrichment/runs/{run_id}/cancel", headers=auth).status_code == 403
    db.session.expire_all()
    assert db.session.get(EnrichmentRun, run_id).status == "queued"
    assert db.session.scalar(sa.select(sa.func.count()).select_from(EnrichmentRun)) == 1


def test_another_workspace_gets_404(client, db, team):
    workspace, owner, _viewer, table, ids, _rows, row_ids = team
    owner_auth = _auth(owner, workspace, "owner")
    base = f"/api/v1/tables/{table.id}/enrichment-columns"
    column_id = client.post(base, json=_body(ids), headers=owner_auth).get_json()["data"]["id"]
    started = client.post(f"{base}/{column_id}/runs", json={"confirm": True}, headers=owner_auth)
    run_id = started.get_json()["data"]["id"]
    other, stranger = workspace_with_owner()
    auth = _auth(stranger, other, "owner")
    for method, path, body in (
        ("GET", base, None),
        ("POST", base, _body(ids)),
        ("GET", f"{base}/{column_id}", None),
        ("PUT", f"{base}/{column_id}", _body(ids)),
        ("POST", f"{base}/{column_id}/estimate", {}),
        ("POST", f"{base}/{column_id}/runs", {"confirm": True}),
        ("GET", f"{base}/{column_id}/cells?row_ids={row_ids[0]}", None),
        ("GET", f"/api/v1/enrichment/runs/{run_id}", None),
        ("POST", f"/api/v1/enrichment/runs/{run_id}/cancel", None),
        ("GET", f"/api/v1/enrichment/runs/{run_id}/attempts", None),
    ):
        resp = client.open(path, method=method, json=body, headers=auth)
        assert resp.status_code == 404, (method, path, resp.status_code)
    assert client.get("/api/v1/enrichment/runs", headers=auth).get_json()["data"] == []
    db.session.expire_all()
    assert db.session.get(EnrichmentRun, run_id).status == "queued"


def test_an_api_key_can_set_up_and_run(client, db, team):
    workspace, owner, _viewer, table, ids, _rows, _ = team
    _key, plaintext = ws_service.create_api_key(workspace, owner, name="ci", role="member")
    auth = {"Authorization": f"Bearer {plaintext}"}
    base = f"/api/v1/tables/{table.id}/enrichment-columns"
    created = client.post(base, json=_body(ids), headers=auth)
    assert created.status_code == 201, created.get_json()
    started = client.post(f"{base}/{created.get_json()['data']['id']}/runs", json={"confirm": True}, headers=auth)
    assert started.status_code == 202
    assert finish_run(started.get_json()["data"]["id"]).status == "completed"


def _sign(key: str, body: bytes) -> str:
    return "sha1=" + hmac.new(key.encode(), body, hashlib.sha1).hexdigest()


def test_signed_callbacks_complete_asynchronous_lookups(client, db, team, sandbox):
    workspace, owner, _viewer, table, ids, rows, row_ids = team
    sandbox.configure("clearbit", async_=True)
    email = data.person(rows[0]["First name"], rows[0]["Last name"], rows[0]["Domain"])["email"]
    tables.update_cell(workspace, owner, table, row_ids[0], ids["Email"], email)
    auth = _auth(owner, workspace, "owner")
    body = {
        "name": "Person",
        "steps": [{"operation": "clearbit.person"}],
        "target": "title",
        "inputs": {"email": ids["Email"]},
    }
    column_id = client.post(f"/api/v1/tables/{table.id}/enrichment-columns", json=body, headers=auth).get_json()
    column_id = column_id["data"]["id"]
    run_id = client.post(
        f"/api/v1/tables/{table.id}/enrichment-columns/{column_id}/runs",
        json={"scope": "selected", "row_ids": [row_ids[0]], "confirm": True},
        headers=auth,
    ).get_json()["data"]["id"]
    executor.work(run_id, 0, budget=10)
    db.session.expire_all()
    waiting = db.session.scalars(sa.select(EnrichmentRunRow).where(EnrichmentRunRow.run_id == run_id)).one()
    assert waiting.status == "awaiting_callback" and waiting.callback_id
    payload = json.dumps(
        {
            "id": waiting.callback_id,
            "type": "person",
            "status": 200,
            # Clearbit's person shape: the title sits under employment.
            "body": {"email": email, "name": {"fullName": "Ada Roe"}, "employment": {"title": "Engineer"}},
        }
    ).encode()
    url = "/api/v1/enrichment/callbacks/clearbit"
    json_type = {"Content-Type": "application/json"}
    assert client.post(url, data=payload, headers=json_type).status_code == 401
    forged = {**json_type, "X-Request-Signature": _sign("sk-test-someone-else", payload)}
    assert client.post(url, data=payload, headers=forged).status_code == 401
    unknown = json.dumps({"id": "nobody-waits-for-this", "status": 200, "body": {}}).encode()
    signed_unknown = {**json_type, "X-Request-Signature": _sign("sandbox-clearbit-key", unknown)}
    assert client.post(url, data=unknown, headers=signed_unknown).status_code == 404
    assert client.post("/api/v1/enrichment/callbacks/hunter", data=payload, headers=json_type).status_code == 404
    assert client.post(url, data=b"{", headers=json_type).status_code == 400
    db.session.expire_all()
    assert db.session.get(EnrichmentRunRow, (run_id, row_ids[0])).status == "awaiting_callback"

    signed = {**json_type, "X-Request-Signature": _sign("sandbox-clearbit-key", payload)}
    resp = client.post(url, data=payload, headers=signed)
    assert resp.status_code == 200 and resp.get_json()["data"] == {"accepted": True}
    run = finish_run(run_id)
    assert run.succeeded == 1
    cells = client.get(
        f"/api/v1/tables/{table.id}/enrichment-columns/{column_id}/cells?row_ids={row_ids[0]}", headers=auth
    ).get_json()["data"]
    assert cells[0]["value"] == "Engineer" and cells[0]["status"] == "success"


def test_any_column_setup_gets_a_clear_answer_and_a_refusal_writes_nothing(client, db, team):
    """Hypothesis over enrichment column bodies (valid setups, then up to three fields replaced by
    anything JSON can hold): 201 with a usable column, or 422 with the reason and the table
    unchanged; never a server error."""
    from hypothesis import given, settings
    from hypothesis import strategies as st

    from morket.core.ratelimit import clear_rate_limits
    from tests.support.properties import THROUGH_THE_APP

    workspace, owner, viewer, table, ids, rows, row_ids = team
    auth = _auth(owner, workspace, "owner")
    base = f"/api/v1/tables/{table.id}/enrichment-columns"
    anything = st.recursive(
        st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=12),
        lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
        max_leaves=6,
    )
    verifier = {"operation": "hunter.email_verifier", "accept": ["valid"]}
    step_lists = [
        [{"operation": "hunter.email_finder"}],
        [{"operation": "hunter.email_finder"}, {"operation": "apollo.people_match"}],
        [{"operation": "apollo.people_match"}],
    ]
    output_lists = [
        [],
        [{"field": "title", "new_column": "Job title"}],
        [{"field": "email", "column_id": ids["Email"]}],
        [{"field": "title", "column_id": ids["First name"]}, {"field": "email", "new_column": "Found email"}],
    ]

    def live_columns() -> dict[int, str]:
        _db.session.expire_all()
        return {c.id: c.type for c in tables.get_table_or_404(workspace, table.id).live_columns}

    seen: set[int] = set()

    @given(data=st.data())
    @settings(THROUGH_THE_APP, max_examples=80)
    def check(data):
        body = _body(
            ids,
            name=data.draw(st.text(max_size=30), label="name"),
            steps=data.draw(st.sampled_from(step_lists), label="steps"),
            outputs=data.draw(st.sampled_from(output_lists), label="outputs"),
            validation=data.draw(st.sampled_from([None, verifier]), label="validation"),
        )
        for _ in range(data.draw(st.integers(0, 3), label="mutations")):
            key = data.draw(st.sampled_from([*sorted(body), "extra"]), label="key")
            if data.draw(st.booleans(), label="delete"):
                body.pop(key, None)
            else:
                body[key] = data.draw(anything, label="value")
        clear_rate_limits()
        before = live_columns()
        resp = client.post(base, json=body, headers=auth)
        assert resp.status_code in (201, 422), (resp.status_code, body, resp.get_data(as_text=True)[:300])
        seen.add(resp.status_code)
        envelope = resp.get_json()
        after = live_columns()
        if resp.status_code == 422:
            assert envelope["success"] is False and envelope["error"]["message"]
            assert after == before  # nothing half-written: no column, no output column
            return
        created = envelope["data"]
        assert after[created["id"]] == "enrichment"
        for output in created["outputs"]:
            assert output["column_id"] in after  # every output lands in a live column
        # Leave the table as it was for the next example (the 100-column cap).
        current = tables.get_table_or_404(workspace, table.id)
        for column_id in sorted(set(after) - set(before)):
            tables.delete_column(workspace, owner, current, column_id)

    check()
    assert seen == {201, 422}  # both answers were exercised
