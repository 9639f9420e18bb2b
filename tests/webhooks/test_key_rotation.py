"""A master-key rotation re-seals webhook endpoints' and inbound sources' secrets: after the switch,
deliveries still verify with the secret the receiver holds, and senders' signatures still pass."""

from __future__ import annotations

import json

from morket.core.crypto import key_fingerprint
from morket.inbound import service as inbound
from morket.tables import service as tables
from morket.webhooks import service
from morket.webhooks.models import WebhookEndpoint
from tests.inbound.conftest import hook_path, signed_headers
from tests.webhooks.test_delivery import _drain, _endpoint, _table, independent_verify, library_verify

NEW_MASTER = bytes(range(180, 212))


def _rotate(app):
    result = app.test_cli_runner().invoke(
        args=["credentials", "rotate-master-key"], env={"MORKET_NEW_MASTER_KEY": NEW_MASTER.hex()}
    )
    assert result.exit_code == 0, result.output
    return result.output


def test_rotation_reseals_endpoint_secrets_and_signatures_still_verify(
    app, db, team, receiver, hook_settings, run_jobs, monkeypatch
):
    endpoint, first = _endpoint(team, receiver.url, types=("row.created",))
    other, other_secret = _endpoint(team, receiver.url, types=("row.updated",))
    rotated = service.rotate_secret(team.workspace, team["admin"], other)  # in its overlap: both sign
    db.session.commit()
    old_ciphertext = bytes(endpoint.secret_ciphertext)

    output = _rotate(app)
    assert "re-encrypted 2" in output
    db.session.expire_all()
    for row in (db.session.get(WebhookEndpoint, endpoint.id), db.session.get(WebhookEndpoint, other.id)):
        assert row.key_fingerprint == key_fingerprint(NEW_MASTER)
    assert bytes(db.session.get(WebhookEndpoint, endpoint.id).secret_ciphertext) != old_ciphertext
    assert first not in output and rotated not in output

    # The workers restart with the new key; the receivers' secrets have not changed.
    monkeypatch.setitem(app.config["MORKET"], "MASTER_KEY", NEW_MASTER)
    table = _table(team)
    [row_id] = tables.insert_rows(team.workspace, team["owner"], table, [{"Name": "Ada"}])
    tables.update_cell(team.workspace, team["owner"], table, row_id, table.columns[0].id, "Ada L.")
    db.session.commit()
    _drain(db, run_jobs, receiver, lambda: len(receiver.received) >= 2)
    by_type = {got.json["type"]: got for got in receiver.received}
    created, updated = by_type["row.created"], by_type["row.updated"]
    assert independent_verify(first, created.headers, created.body)
    assert library_verify(first, created.headers, created.body)["data"]["row_ids"] == [row_id]
    # The endpoint rotated before the key change still signs with both of its secrets.
    assert independent_verify(rotated, updated.headers, updated.body)
    assert independent_verify(other_secret, updated.headers, updated.body)
    assert len(updated.headers["webhook-signature"].split(" ")) == 2


def test_rotation_reseals_inbound_secrets(app, client, db, team, monkeypatch):
    table = tables.create_table(team.workspace, team["owner"], "Signups", columns=[{"name": "Email", "type": "email"}])
    source, secret = inbound.create_source(team.workspace, team["owner"], table, "Form")
    inbound.update_source(team.workspace, team["owner"], source, columns={"Email": "$.email"})
    db.session.commit()

    assert "re-encrypted 1" in _rotate(app)
    db.session.expire_all()
    source = db.session.get(type(source), source.id)
    assert source.key_fingerprint == key_fingerprint(NEW_MASTER)
    monkeypatch.setitem(app.config["MORKET"], "MASTER_KEY", NEW_MASTER)
    assert inbound.source_secret(source) == secret

    body = json.dumps({"email": "ada@example.com"}).encode()
    resp = client.post(
        hook_path(source), data=body, headers={"Content-Type": "application/json", **signed_headers(secret, body)}
    )
    assert resp.status_code == 200, resp.get_json()
    assert resp.get_json()["data"]["inserted"] == 1
    wrong = client.post(
        hook_path(source),
        data=body,
        headers={"Content-Type": "application/json", **signed_headers("whsec_" + "A" * 32, body, msg_id="m2")},
    )
    assert wrong.status_code == 401
