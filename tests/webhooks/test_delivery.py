"""Deliveries: signatures checked independently, order through an outage, SSRF, secrets kept, auto-disable."""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import socket
import time

import pytest
from sqlalchemy import select
from standardwebhooks.webhooks import Webhook

from morket.core.errors import ValidationFailed
from morket.core.models import OutboxMessage
from morket.tables import service as tables
from morket.webhooks import service, tasks
from morket.webhooks.models import WebhookAttempt, WebhookDelivery, WebhookEndpoint, WebhookEvent


def independent_verify(secret: str, headers: dict[str, str], body: bytes) -> bool:
    """Standard Webhooks by hand: HMAC-SHA256 of id.timestamp.body under the secret's bytes."""
    key = base64.b64decode(secret.split("_", 1)[1])
    content = f"{headers['webhook-id']}.{headers['webhook-timestamp']}.".encode() + body
    expected = base64.b64encode(hmac.new(key, content, hashlib.sha256).digest()).decode()
    given = [part.split(",", 1)[1] for part in headers["webhook-signature"].split(" ") if part.startswith("v1,")]
    return any(hmac.compare_digest(expected, sig) for sig in given)


def library_verify(secret: str, headers: dict[str, str], body: bytes) -> dict:
    return Webhook(secret).verify(body, headers)


def _table(team):
    return tables.create_table(team.workspace, team["owner"], "Leads", columns=[{"name": "Name", "type": "text"}])


def _endpoint(team, url, types=("row.created",)):
    return service.create_endpoint(team.workspace, team["admin"], url, list(types), description="CRM sync")


def _drain(db, run_jobs, receiver, until, timeout=20.0):
    """Run the sweep and the delivery jobs (in-process RQ worker) until ``until()`` or the timeout."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        tasks.wake_due_endpoints()
        db.session.commit()
        run_jobs()
        if until():
            return
        time.sleep(0.02)
    raise AssertionError(f"not done in {timeout}s; receiver saw {len(receiver.received)} requests")


def test_row_event_is_signed_and_verified_independently(db, team, receiver, hook_settings, run_jobs):
    endpoint, secret = _endpoint(team, receiver.url)
    table = _table(team)
    ids = tables.insert_rows(team.workspace, team["owner"], table, [{"Name": "Ada"}, {"Name": "Grace"}])
    db.session.commit()
    _drain(db, run_jobs, receiver, lambda: len(receiver.received) >= 1)
    [got] = receiver.received
    assert independent_verify(secret, got.headers, got.body)
    payload = library_verify(secret, got.headers, got.body)
    assert payload["type"] == "row.created"
    assert payload["data"]["row_ids"] == ids and payload["data"]["table"]["id"] == table.id
    assert payload["id"] == got.headers["webhook-id"]
    assert abs(int(got.headers["webhook-timestamp"]) - time.time()) < 60
    # A body changed on the way fails both verifiers.
    assert not independent_verify(secret, got.headers, got.body + b" ")
    delivery = db.session.scalar(select(WebhookDelivery).where(WebhookDelivery.endpoint_id == endpoint.id))
    assert (delivery.status, delivery.attempts) == ("succeeded", 1)


def test_no_subscriber_writes_nothing_and_rollback_sends_nothing(db, team, receiver, hook_settings, run_jobs):
    _endpoint(team, receiver.url, types=("row.deleted",))
    table = _table(team)
    tables.insert_rows(team.workspace, team["owner"], table, [{"Name": "Ada"}])
    assert db.session.scalar(select(WebhookEvent).where(WebhookEvent.workspace_id == team.workspace.id)) is None
    nested = db.session.begin_nested()
    endpoint2, _ = _endpoint(team, receiver.url, types=("row.created",))
    tables.insert_rows(team.workspace, team["owner"], table, [{"Name": "Rolled back"}])
    nested.rollback()
    db.session.commit()
    run_jobs()
    assert receiver.received == []


def test_bulk_rows_are_batched(db, team, receiver, hook_settings, run_jobs, monkeypatch):
    monkeypatch.setitem(hook_settings, "WEBHOOK_ROW_BATCH", 500)
    _endpoint(team, receiver.url)
    table = _table(team)
    ids = tables.insert_rows(team.workspace, team["owner"], table, [{"Name": f"r{i}"} for i in range(1200)])
    db.session.commit()
    _drain(db, run_jobs, receiver, lambda: len(receiver.received) >= 3)
    batches = [r.json["data"]["row_ids"] for r in receiver.received]
    assert [len(b) for b in batches] == [500, 500, 200]
    assert [i for b in batches for i in b] == ids


def test_receiver_down_then_up_delivers_everything_in_order(db, team, receiver, hook_settings, run_jobs):
    """The receiver answers 503 to the first 7 requests, then 200: every event arrives, in order, signed."""
    hook_settings["WEBHOOK_RETRY_SCHEDULE"] = [0.05] * 20
    receiver.statuses = [503] * 7
    endpoint, secret = _endpoint(team, receiver.url, types=("row.created", "row.updated", "row.deleted"))
    table = _table(team)
    for i in range(4):
        (row_id,) = tables.insert_rows(team.workspace, team["owner"], table, [{"Name": f"n{i}"}])
        tables.update_cell(team.workspace, team["owner"], table, row_id, table.columns[0].id, f"m{i}")
        db.session.commit()
    emitted = list(
        db.session.scalars(
            select(WebhookEvent.uid).where(WebhookEvent.workspace_id == team.workspace.id).order_by(WebhookEvent.id)
        )
    )
    assert len(emitted) == 8
    delivered = lambda: all(  # noqa: E731
        d.status == "succeeded"
        for d in db.session.scalars(
            select(WebhookDelivery)
            .where(WebhookDelivery.endpoint_id == endpoint.id)
            .execution_options(populate_existing=True)
        )
    )
    _drain(db, run_jobs, receiver, delivered)
    assert len(receiver.received) == 8 + 7
    assert all(independent_verify(secret, r.headers, r.body) for r in receiver.received)
    assert all(library_verify(secret, r.headers, r.body) for r in receiver.received)
    # In event order: the failed head was retried before anything behind it was sent.
    order = [r.headers["webhook-id"] for r in receiver.received]
    assert all(i == emitted[0] for i in order[:8])
    assert order[7:] == emitted
    attempts = db.session.scalars(select(WebhookAttempt).order_by(WebhookAttempt.id)).all()
    assert [a.status_code for a in attempts] == [503] * 7 + [200] * 8
    assert all(a.latency_ms >= 0 and a.response_excerpt == '{"ok": true}' for a in attempts)


def test_auto_disable_after_schedule_emails_owner(db, team, receiver, hook_settings, run_jobs, smtp_server):
    receiver.default = 500
    receiver.body = b"upstream broke; token=abc\x07"
    endpoint, _ = _endpoint(team, receiver.url)
    table = _table(team)
    tables.insert_rows(team.workspace, team["owner"], table, [{"Name": "Ada"}])
    db.session.commit()
    _drain(db, run_jobs, receiver, lambda: len(receiver.received) >= 4)
    run_jobs()  # the email
    db.session.refresh(endpoint)
    assert endpoint.enabled is False and "Disabled automatically" in endpoint.disabled_reason
    assert len(receiver.received) == 4  # the first try and the three retries of the schedule
    delivery = db.session.scalar(select(WebhookDelivery).where(WebhookDelivery.endpoint_id == endpoint.id))
    assert delivery.status == "failed"
    excerpt = db.session.scalars(select(WebhookAttempt.response_excerpt)).first()
    assert "\x07" not in excerpt and excerpt.startswith("upstream broke")
    [mail] = smtp_server.wait_for(team["owner"].email)
    assert "disabled" in mail.subject and receiver.url in mail.text
    assert smtp_server.to(team["admin"].email) == []
    # Enabling it again sends the waiting events.
    receiver.default = 200
    service.redeliver(team.workspace, team["admin"], delivery)
    service.update_endpoint(team.workspace, team["admin"], endpoint, enabled=True)
    db.session.commit()
    _drain(db, run_jobs, receiver, lambda: len(receiver.received) >= 5)
    db.session.refresh(delivery)
    assert delivery.status == "succeeded"


def test_rotation_overlap_both_signatures_valid(db, team, receiver, hook_settings, run_jobs):
    endpoint, old = _endpoint(team, receiver.url)
    new = service.rotate_secret(team.workspace, team["admin"], endpoint)
    assert new != old and new.startswith("whsec_")
    table = _table(team)
    tables.insert_rows(team.workspace, team["owner"], table, [{"Name": "Ada"}])
    db.session.commit()
    _drain(db, run_jobs, receiver, lambda: len(receiver.received) >= 1)
    [got] = receiver.received
    assert len(got.headers["webhook-signature"].split(" ")) == 2
    assert independent_verify(old, got.headers, got.body) and independent_verify(new, got.headers, got.body)
    assert library_verify(old, got.headers, got.body) and library_verify(new, got.headers, got.body)
    # After the overlap only the new secret signs.
    endpoint.previous_expires_at = endpoint.created_at
    db.session.commit()
    service.send_test_event(team.workspace, team["admin"], endpoint)
    db.session.commit()
    _drain(db, run_jobs, receiver, lambda: len(receiver.received) >= 2)
    last = receiver.received[-1]
    assert len(last.headers["webhook-signature"].split(" ")) == 1
    assert independent_verify(new, last.headers, last.body) and not independent_verify(old, last.headers, last.body)


@pytest.fixture
def fake_dns(monkeypatch):
    """Names under .hooks.test resolve to what the test says; everything else as usual."""
    real = socket.getaddrinfo
    table: dict[str, str] = {}

    def getaddrinfo(host, port, *args, **kwargs):
        if isinstance(host, str) and host in table:
            family = socket.AF_INET6 if ":" in table[host] else socket.AF_INET
            return [(family, socket.SOCK_STREAM, 6, "", (table[host], port or 443))]
        return real(host, port, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    return table


@pytest.mark.parametrize("address", ["127.0.0.1", "10.1.2.3", "169.254.169.254", "::1", "192.168.0.9"])
def test_ssrf_refused_at_save(db, team, hook_settings, fake_dns, address):
    fake_dns["inside.hooks.test"] = address
    with pytest.raises(ValidationFailed) as refused:
        _endpoint(team, "https://inside.hooks.test/hook")
    assert address in refused.value.message or "private" in refused.value.message


def test_http_refused_without_the_development_setting(db, team, hook_settings, receiver):
    hook_settings["WEBHOOK_ALLOW_HTTP_LOOPBACK"] = False
    with pytest.raises(ValidationFailed, match="https"):
        _endpoint(team, receiver.url)
    hook_settings["WEBHOOK_ALLOW_HTTP_LOOPBACK"] = True
    hook_settings["ENV"] = "production"
    try:
        with pytest.raises(ValidationFailed, match="https"):
            _endpoint(team, receiver.url)
    finally:
        hook_settings["ENV"] = "test"


def test_ssrf_refused_at_delivery_when_dns_changes(db, team, hook_settings, fake_dns, run_jobs):
    fake_dns["rebind.hooks.test"] = "93.184.216.34"
    endpoint, _ = _endpoint(team, "https://rebind.hooks.test/hook")
    fake_dns["rebind.hooks.test"] = "10.0.0.7"
    table = _table(team)
    tables.insert_rows(team.workspace, team["owner"], table, [{"Name": "Ada"}])
    db.session.commit()
    tasks.deliver_endpoint(endpoint.id)
    attempt = db.session.scalar(select(WebhookAttempt))
    assert attempt.ok is False and attempt.status_code is None
    assert attempt.error.startswith("refused:") and "10.0.0.7" in attempt.error


def test_redirects_are_not_followed(db, team, receiver, hook_settings, run_jobs):
    receiver.statuses = [302]
    receiver.headers = {"Location": "http://169.254.169.254/latest/meta-data/"}
    endpoint, _ = _endpoint(team, receiver.url)
    table = _table(team)
    tables.insert_rows(team.workspace, team["owner"], table, [{"Name": "Ada"}])
    db.session.commit()
    tasks.deliver_endpoint(endpoint.id)
    attempt = db.session.scalar(select(WebhookAttempt))
    assert attempt.status_code == 302 and "not followed" in attempt.error
    assert len(receiver.received) == 1


def test_secret_absent_from_logs_and_job_payloads(db, team, receiver, hook_settings, run_jobs, caplog, app):
    caplog.set_level(logging.DEBUG)
    endpoint, secret = _endpoint(team, receiver.url)
    rotated = service.rotate_secret(team.workspace, team["admin"], endpoint)
    table = _table(team)
    tables.insert_rows(team.workspace, team["owner"], table, [{"Name": "Ada"}])
    db.session.commit()
    messages = db.session.scalars(select(OutboxMessage).where(OutboxMessage.func.like("morket.webhooks%"))).all()
    assert messages and all(m.args == [endpoint.id] for m in messages)
    from rq import Queue

    from morket.core.jobs import relay_outbox

    relay_outbox()
    queued = Queue("io", connection=app.extensions["morket_redis"]).jobs
    assert queued and all(secret not in repr(j.args) and rotated not in repr(j.args) for j in queued)
    _drain(db, run_jobs, receiver, lambda: len(receiver.received) >= 1)
    stored = db.session.get(WebhookEndpoint, endpoint.id)
    for text in [caplog.text, repr(stored.secret_ciphertext)]:
        assert secret not in text and rotated not in text
        assert secret.split("_", 1)[1] not in text


def test_import_and_export_finishing_emit_one_event_each(db, team, receiver, hook_settings, run_jobs):
    from morket.dataops.models import DataRun

    _endpoint(team, receiver.url, types=("import.finished", "export.finished"))
    table = _table(team)
    run = DataRun(workspace_id=team.workspace.id, kind="import", status="running", table_id=table.id, file_name="a.csv")
    db.session.add(run)
    db.session.commit()
    assert db.session.scalar(select(WebhookEvent)) is None
    run.status, run.rows_in = "done", 1_000_000
    db.session.commit()
    export = DataRun(workspace_id=team.workspace.id, kind="export", status="done", table_id=table.id, file_name="b.csv")
    db.session.add(export)
    db.session.commit()
    run.message = "edited later"
    db.session.commit()  # not a new finish
    _drain(db, run_jobs, receiver, lambda: len(receiver.received) >= 2)
    got = [(r.json["type"], r.json["data"]["id"]) for r in receiver.received]
    assert got == [("import.finished", run.id), ("export.finished", export.id)]
    assert receiver.received[0].json["data"]["rows_in"] == 1_000_000


def test_enrichment_run_finishing_emits_run_finished(db, team, receiver, hook_settings, run_jobs):
    from morket.runs import leases
    from morket.runs.models import Run

    _endpoint(team, receiver.url, types=("run.finished",))
    table = _table(team)
    run = Run(
        workspace_id=team.workspace.id,
        table_id=table.id,
        column_id=table.columns[0].id,
        scope="all",
        status="running",
        total=3,
        done=3,
        succeeded=2,
        no_data=1,
        credits_used=4,
    )
    db.session.add(run)
    db.session.flush()
    assert leases.finish_if_done(run.id) is True
    assert leases.finish_if_done(run.id) is False  # only the call that completes it announces it
    db.session.commit()
    _drain(db, run_jobs, receiver, lambda: len(receiver.received) >= 1)
    [got] = receiver.received
    assert got.json["type"] == "run.finished"
    assert {k: got.json["data"][k] for k in ("id", "status", "succeeded", "no_data", "credits_used")} == {
        "id": run.id,
        "status": "completed",
        "succeeded": 2,
        "no_data": 1,
        "credits_used": 4,
    }
