"""The inbound URL: secrets and signatures, object and array bodies, upserts, limits, refusals and replay."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from morket.inbound import service
from morket.inbound.models import InboundFailure
from morket.tables import service as tables
from tests.factories import workspace_with_owner
from tests.inbound.conftest import hook_path, post, signed_headers, table_rows


def _failures(db, source) -> list[InboundFailure]:
    return list(db.session.scalars(db.select(InboundFailure).where(InboundFailure.source_id == source.id)))


def test_an_object_with_the_secret_in_a_header_becomes_a_row(client, db, team, source):
    workspace, owner, table = team
    made, secret = source
    body = {"email": " Ada@Example.com ", "person": {"name": "Ada"}, "company": {"size": 12}}
    resp = post(client, made, body, secret=secret)
    assert resp.status_code == 200, resp.get_json()
    assert resp.get_json() == {
        "success": True,
        "data": {"inserted": 1, "updated": 0, "duplicate": False},
        "error": None,
        "meta": {},
    }
    rows = table_rows(workspace, owner, table)
    assert len(rows) == 1
    assert rows[0]["Email"] == "Ada@example.com" and rows[0]["Name"] == "Ada" and rows[0]["Employees"] == 12
    db.session.refresh(made)
    assert made.rows_inserted == 1 and made.requests_accepted == 1 and made.recent[0]["inserted"] == 1
    assert made.sample == body


def test_an_array_is_one_insert_of_every_row_and_bearer_works_too(client, db, team, source):
    workspace, owner, table = team
    made, secret = source
    body = [{"email": f"p{i}@example.com", "person": {"name": f"P{i}"}} for i in range(500)]
    resp = post(client, made, body, headers={"Authorization": f"Bearer {secret}"})
    assert resp.status_code == 200
    assert resp.get_json()["data"]["inserted"] == 500
    rows = table_rows(workspace, owner, table)
    assert len(rows) == 500 and rows[0]["Email"] == "p0@example.com" and rows[-1]["Name"] == "P499"


def test_records_path_takes_a_wrapped_list(client, db, team, source):
    workspace, owner, table = team
    made, secret = source
    service.update_source(workspace, owner, made, records_path="$.contacts")
    resp = post(client, made, {"contacts": [{"email": "a@x.io"}, {"email": "b@x.io"}]}, secret=secret)
    assert resp.get_json()["data"]["inserted"] == 2
    assert [r["Email"] for r in table_rows(workspace, owner, table)] == ["a@x.io", "b@x.io"]


def test_a_wrong_or_missing_secret_is_401_and_nothing_is_kept(client, db, team, source):
    workspace, owner, table = team
    made, _secret = source
    for headers in ({"X-Morket-Secret": "whsec_wrong"}, {"Authorization": "Bearer nope"}, {}):
        resp = post(client, made, {"email": "a@x.io"}, headers=headers)
        assert resp.status_code == 401
        assert resp.get_json()["error"]["code"] == "unauthorized"
    assert table_rows(workspace, owner, table) == []
    assert _failures(db, made) == []


def test_a_standard_webhooks_signature_is_checked(client, db, team, source):
    workspace, owner, table = team
    made, secret = source
    data = json.dumps({"email": "signed@example.com"}).encode()
    resp = post(client, made, None, raw=data, headers=signed_headers(secret, data, msg_id="msg_ok"))
    assert resp.status_code == 200 and resp.get_json()["data"]["inserted"] == 1
    # The same message again (a sender's retry) is acknowledged and not written twice.
    again = post(client, made, None, raw=data, headers=signed_headers(secret, data, msg_id="msg_ok"))
    assert again.status_code == 200 and again.get_json()["data"] == {"inserted": 0, "updated": 0, "duplicate": True}
    # Signed with another secret, or over other bytes: refused.
    wrong = post(client, made, None, raw=data, headers=signed_headers("whsec_" + "QUJD" * 8, data, msg_id="m2"))
    assert wrong.status_code == 401
    tampered = post(client, made, None, raw=data + b" ", headers=signed_headers(secret, data, msg_id="m3"))
    assert tampered.status_code == 401
    assert [r["Email"] for r in table_rows(workspace, owner, table)] == ["signed@example.com"]


def test_a_signature_older_than_five_minutes_is_refused(client, db, team, source):
    workspace, owner, table = team
    made, secret = source
    data = json.dumps({"email": "late@example.com"}).encode()
    old = datetime.now(UTC) - timedelta(minutes=5, seconds=30)
    resp = post(client, made, None, raw=data, headers=signed_headers(secret, data, msg_id="msg_old", at=old))
    assert resp.status_code == 401
    assert "too old" in resp.get_json()["error"]["message"]
    assert table_rows(workspace, owner, table) == []


def test_a_source_that_requires_signatures_refuses_the_bare_secret(client, db, team, source):
    workspace, owner, table = team
    made, secret = source
    service.update_source(workspace, owner, made, require_signature=True)
    resp = post(client, made, {"email": "a@x.io"}, secret=secret)
    assert resp.status_code == 401 and "signed" in resp.get_json()["error"]["message"]
    data = json.dumps({"email": "a@x.io"}).encode()
    assert post(client, made, None, raw=data, headers=signed_headers(secret, data)).status_code == 200


def test_upsert_by_normalised_key_updates_instead_of_inserting(client, db, team, source):
    workspace, owner, table = team
    made, secret = source
    email = next(c for c in table.live_columns if c.name == "Email")
    service.update_source(workspace, owner, made, upsert_column_id=email.id)
    post(client, made, [{"email": "ada@example.com", "person": {"name": "Ada"}}], secret=secret)
    resp = post(
        client,
        made,
        [
            {"email": "  ADA@example.com", "company": {"size": 50}},
            {"email": "bob@example.com", "person": {"name": "Bob"}},
            {"email": "Bob@Example.com ", "company": {"size": 3}},
        ],
        secret=secret,
    )
    assert resp.get_json()["data"] == {"inserted": 1, "updated": 1, "duplicate": False}
    rows = table_rows(workspace, owner, table)
    assert len(rows) == 2
    by_email = {r["Email"].lower(): r for r in rows}
    assert by_email["ada@example.com"]["Name"] == "Ada" and by_email["ada@example.com"]["Employees"] == 50
    assert by_email["bob@example.com"]["Name"] == "Bob" and by_email["bob@example.com"]["Employees"] == 3


def test_415_for_anything_but_json(client, db, team, source):
    workspace, owner, table = team
    made, secret = source
    resp = post(client, made, None, raw=b"email=a@x.io", secret=secret, headers={"Content-Type": "text/plain"})
    assert resp.status_code == 415
    assert resp.get_json()["error"]["code"] == "unsupported_media_type"
    assert table_rows(workspace, owner, table) == [] and _failures(db, made) == []


def test_413_over_the_source_body_limit_without_writing(client, db, team, source):
    workspace, owner, table = team
    made, secret = source
    service.update_source(workspace, owner, made, max_body_bytes=2048)
    big = [{"email": f"p{i}@example.com"} for i in range(200)]
    resp = post(client, made, big, secret=secret)
    assert resp.status_code == 413
    assert resp.get_json()["error"]["code"] == "payload_too_large"
    assert table_rows(workspace, owner, table) == []
    # Over the app's own JSON limit the answer is the same envelope.
    huge = b'{"email": "' + b"x" * (1024 * 1024 + 10) + b'"}'
    resp = post(client, made, None, raw=huge, secret=secret)
    assert resp.status_code == 413 and resp.get_json()["success"] is False


def test_429_with_retry_after_past_the_source_rate(client, db, team, source):
    workspace, owner, table = team
    made, secret = source
    service.update_source(workspace, owner, made, rate_per_minute=2)
    db.session.flush()
    codes = [post(client, made, {"email": f"r{i}@x.io"}, secret=secret).status_code for i in range(2)]
    resp = post(client, made, {"email": "r3@x.io"}, secret=secret)
    assert codes == [200, 200]
    assert resp.status_code == 429 and int(resp.headers["Retry-After"]) >= 1
    assert resp.get_json()["error"]["code"] == "rate_limited"
    assert len(table_rows(workspace, owner, table)) == 2


def test_malformed_json_is_400_kept_and_writes_nothing(client, db, team, source):
    workspace, owner, table = team
    made, secret = source
    resp = post(client, made, None, raw=b'{"email": "a@x.io",', secret=secret)
    assert resp.status_code == 400
    error = resp.get_json()["error"]
    assert error["code"] == "invalid_json" and "not valid JSON" in error["message"]
    assert table_rows(workspace, owner, table) == []
    (kept,) = _failures(db, made)
    assert bytes(kept.body) == b'{"email": "a@x.io",' and kept.status == 400


def test_unmapped_and_refused_values_are_422_kept_and_nothing_is_written(client, db, team, source):
    workspace, owner, table = team
    made, secret = source
    resp = post(client, made, [{"email": "ok@x.io"}, {"unknown": 1}], secret=secret)
    assert resp.status_code == 422
    error = resp.get_json()["error"]
    assert error["code"] == "unmapped" and "records[1]" in error["fields"]
    resp = post(client, made, [{"email": "ok@x.io"}, {"email": "not an email"}], secret=secret)
    assert resp.status_code == 422
    error = resp.get_json()["error"]
    assert error["code"] == "invalid_value" and any(k.startswith("records[1]") for k in error["fields"])
    assert table_rows(workspace, owner, table) == []
    assert [f.code for f in _failures(db, made)] == ["unmapped", "invalid_value"]


def test_replay_after_fixing_the_mapping_writes_the_rows(client, db, team, source):
    workspace, owner, table = team
    made, secret = source
    body = [{"contact": {"mail": "x1@example.com"}}, {"contact": {"mail": "x2@example.com"}}]
    assert post(client, made, body, secret=secret).status_code == 422
    (kept,) = _failures(db, made)
    service.update_source(workspace, owner, made, columns={"Email": "$.contact.mail"})
    db.session.flush()
    result = service.replay_failure(workspace, owner, made, kept.id)
    assert result.inserted == 2
    assert [r["Email"] for r in table_rows(workspace, owner, table)] == ["x1@example.com", "x2@example.com"]
    assert _failures(db, made) == []


def test_a_replay_still_refused_keeps_the_payload_with_the_new_reason(client, db, team, source):
    workspace, owner, table = team
    made, secret = source
    assert post(client, made, [{"nothing": 1}], secret=secret).status_code == 422
    (kept,) = _failures(db, made)
    try:
        service.replay_failure(workspace, owner, made, kept.id)
    except service.Refused as exc:
        service.note_replay_refused(workspace, made, kept.id, exc)
    db.session.refresh(kept)
    assert kept.replays == 1 and kept.code == "unmapped"
    assert table_rows(workspace, owner, table) == []


def test_failed_payloads_are_capped(client, db, team, source):
    _workspace, _owner, _table = team
    made, _secret = source
    for i in range(service.FAILURES_KEPT + 5):
        refused = service.Refused(400, "invalid_json", "x")
        service.record_failure(made.id, made.workspace_id, b"{" + str(i).encode(), refused)
    kept = _failures(db, made)
    assert len(kept) == service.FAILURES_KEPT
    assert min(bytes(f.body) for f in kept) != b"{0"


def test_another_workspace_token_never_writes_into_this_table(client, db, team, source):
    workspace, owner, table = team
    made, secret = source
    other_ws, other_owner = workspace_with_owner(name="Other Inc")
    other_table = tables.create_table(other_ws, other_owner, "Theirs", columns=[{"name": "Email", "type": "email"}])
    theirs, their_secret = service.create_source(other_ws, other_owner, other_table, "Theirs")
    service.update_source(other_ws, other_owner, theirs, columns={"Email": "$.email"})
    db.session.flush()
    # Their token with our secret: refused; their token with their secret: their table only.
    assert post(client, theirs, {"email": "a@x.io"}, secret=secret).status_code == 401
    assert post(client, theirs, {"email": "b@x.io"}, secret=their_secret).status_code == 200
    assert table_rows(workspace, owner, table) == []
    assert [r["Email"] for r in table_rows(other_ws, other_owner, other_table)] == ["b@x.io"]
    # An unknown token is a 404 envelope.
    resp = client.post("/api/v1/hooks/in/not-a-token", json={"email": "c@x.io"}, headers={"X-Morket-Secret": secret})
    assert resp.status_code == 404 and resp.get_json()["success"] is False


def test_a_rotated_secret_replaces_the_old_one(client, db, team, source):
    workspace, owner, table = team
    made, secret = source
    fresh = service.rotate_secret(workspace, owner, made)
    db.session.flush()
    assert fresh != secret and fresh.startswith("whsec_")
    assert post(client, made, {"email": "a@x.io"}, secret=secret).status_code == 401
    assert post(client, made, {"email": "a@x.io"}, secret=fresh).status_code == 200


def test_the_secret_is_stored_encrypted(db, team, source):
    made, secret = source
    assert secret.encode() not in bytes(made.secret_ciphertext)
    assert service.source_secret(made) == secret
    assert hook_path(made).endswith(made.token) and len(made.token) >= 40
