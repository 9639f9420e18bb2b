"""Webhook delivery jobs: drain one endpoint in event order; wake endpoints whose retries are due.

One endpoint is worked on by one job at a time: the job holds a PostgreSQL advisory lock on the
endpoint for each attempt's transaction, so the lock goes with the connection when a worker is
killed (no lease to wait out), and the next job or sweep continues. Its oldest pending delivery
goes first; while it waits for a retry, the later ones wait behind it (order per endpoint by
event id). A delivery is marked done only in the transaction that records its 2xx: a worker
killed mid-attempt leaves it pending and it is sent again, with the same ``webhook-id``, which
receivers use to drop the duplicate.
"""

from __future__ import annotations

import json
import logging
import time

import httpx
from flask import current_app
from sqlalchemy import func, select

from morket.core.db import utcnow
from morket.core.jobs import QUEUE_IO, enqueue_after_commit, relay_committed
from morket.extensions import db
from morket.webhooks import delivery as transport
from morket.webhooks import service
from morket.webhooks.models import WebhookEndpoint, WebhookEvent
from morket.webhooks.signing import signed_headers

log = logging.getLogger("morket.webhooks")

# The advisory lock's first key names this use; the second is the endpoint id.
LOCK_CLASS = 0x5748
JOB_BUDGET_SECONDS = 240.0
SWEEP_SECONDS = 5

_client: httpx.Client | None = None


def http_client() -> httpx.Client:
    """This process's HTTP client for deliveries (connection reuse; redirects never followed)."""
    global _client
    if _client is None:
        _client = httpx.Client(follow_redirects=False, limits=httpx.Limits(max_connections=64))
    return _client


def body_of(event: WebhookEvent) -> bytes:
    """The exact bytes sent (and signed) for ``event``."""
    return json.dumps(
        {"id": event.uid, **event.payload}, separators=(",", ":"), ensure_ascii=False, sort_keys=True
    ).encode()


def _locked(endpoint_id: int) -> bool:
    return bool(db.session.scalar(select(func.pg_try_advisory_xact_lock(LOCK_CLASS, endpoint_id))))


def deliver_endpoint(endpoint_id: int) -> int:
    """Send the endpoint's due deliveries in event order until one fails or none is due; return how many succeeded."""
    settings = current_app.config["MORKET"]
    allow_http = service.allow_http_loopback()
    timeout = float(settings["WEBHOOK_TIMEOUT"])
    deadline = time.monotonic() + JOB_BUDGET_SECONDS
    client = http_client()
    sent = 0
    secrets: list[str] | None = None
    while time.monotonic() < deadline:
        db.session.commit()
        if not _locked(endpoint_id):
            db.session.rollback()
            return sent  # another job is draining this endpoint
        endpoint = db.session.get(WebhookEndpoint, endpoint_id, populate_existing=True)
        if endpoint is None or not endpoint.enabled:
            db.session.rollback()
            return sent
        delivery = service.next_due(endpoint_id)
        if delivery is None or delivery.next_attempt_at > utcnow():
            db.session.rollback()
            return sent
        event = db.session.get(WebhookEvent, delivery.event_id)
        if secrets is None:
            try:
                secrets = service.signing_secrets(endpoint)
            except service.EndpointUnreadable:
                log.error("webhook secret unreadable", extra={"data": {"endpoint_id": endpoint_id}})
                db.session.rollback()
                return sent
        body = body_of(event)
        headers = signed_headers(secrets, event.uid, int(time.time()), body)
        outcome = transport.send(
            client, endpoint.url, body, headers, timeout=timeout, allow_http_loopback=allow_http, secrets=tuple(secrets)
        )
        _, disabled = service.record_attempt(endpoint, delivery, outcome)
        db.session.commit()
        if disabled:
            relay_committed()  # the owners' email
            log.warning("webhook endpoint disabled after failing", extra={"data": {"endpoint_id": endpoint_id}})
        if not outcome.ok:
            return sent
        sent += 1
    service.wake_endpoint(endpoint_id)  # out of time with work left: continue in a fresh job
    return sent


def wake_due_endpoints() -> int:
    """Queue a delivery job for every enabled endpoint whose oldest pending delivery is due (periodic)."""
    period = int(time.time() // SWEEP_SECONDS)
    due = service.endpoints_with_due_deliveries()
    for endpoint_id in due:
        enqueue_after_commit(
            "morket.webhooks.tasks.deliver_endpoint",
            endpoint_id,
            queue=QUEUE_IO,
            job_id=f"webhook-endpoint-{endpoint_id}-due-{period}",
        )
    return len(due)
