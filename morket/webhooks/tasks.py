"""Webhook delivery jobs: drain one endpoint in event order; wake endpoints whose retries are due.

One endpoint is worked on by one job at a time: the job holds a PostgreSQL advisory lock on the
endpoint, on a connection of its own, so the lock goes with the connection when a worker is
killed (no lease to wait out), and the next job or sweep continues. Its oldest pending delivery
goes first; while it waits for a retry, the later ones wait behind it (order per endpoint by
event id). A delivery is marked done only by a commit after its 2xx (successes are committed in
runs of up to 250 or every quarter second): a worker killed before that commit leaves them
pending and they are sent again, with the same ``webhook-id``, which receivers use to drop the
duplicate.
"""

from __future__ import annotations

import logging
import time

import httpx
from flask import current_app
from sqlalchemy import func, select

from morket.core.jobs import QUEUE_IO, enqueue_after_commit, relay_committed
from morket.core.urlsafety import UnsafeUrl
from morket.extensions import db
from morket.webhooks import delivery as transport
from morket.webhooks import service
from morket.webhooks.models import WebhookDelivery, WebhookEndpoint, WebhookEvent
from morket.webhooks.signing import signed_headers

log = logging.getLogger("morket.webhooks")

# The advisory lock's first key names this use; the second is the endpoint id.
LOCK_CLASS = 0x5748
JOB_BUDGET_SECONDS = 240.0
BATCH = 500
COMMIT_EVERY = 250
COMMIT_SECONDS = 0.25
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
    return service.event_body(event)


def deliver_endpoint(endpoint_id: int) -> int:
    """Send the endpoint's due deliveries in event order until one fails or none is due; return how many succeeded.

    The endpoint's lock is a session-level advisory lock on a connection of its own, held for the
    whole job: PostgreSQL drops it with the connection if the worker dies.
    """
    lock = (LOCK_CLASS, endpoint_id)
    with db.engine.connect() as conn:
        got = conn.scalar(select(func.pg_try_advisory_lock(*lock)))
        conn.commit()
        if not got:
            return 0  # another job is draining this endpoint
        try:
            return _drain(endpoint_id)
        finally:
            db.session.rollback()
            conn.execute(select(func.pg_advisory_unlock(*lock)))
            conn.commit()


def _drain(endpoint_id: int) -> int:
    settings = current_app.config["MORKET"]
    allow_http = service.allow_http_loopback()
    timeout = float(settings["WEBHOOK_TIMEOUT"])
    deadline = time.monotonic() + JOB_BUDGET_SECONDS
    client = http_client()
    sent = 0
    secrets: list[str] | None = None
    while time.monotonic() < deadline:
        endpoint = db.session.get(WebhookEndpoint, endpoint_id, populate_existing=True)
        if endpoint is None or not endpoint.enabled:
            return sent
        batch = service.due_batch(endpoint_id, BATCH)
        if not batch:
            return sent
        if secrets is None:
            try:
                secrets = service.signing_secrets(endpoint)
            except service.EndpointUnreadable:
                log.error("webhook secret unreadable", extra={"data": {"endpoint_id": endpoint_id}})
                return sent
        kept, url = tuple(secrets), endpoint.url
        try:  # checked and pinned once per batch; a refusal is recorded by the first send below
            target: transport.Target | None = transport.prepare(url, allow_http_loopback=allow_http)
        except UnsafeUrl:
            target = None
        done: list[tuple[service.Due, transport.Outcome]] = []
        flushed = time.monotonic()
        for due in batch:
            headers = signed_headers(secrets, due.event_uid, int(time.time()), due.body)
            outcome = transport.send(
                client, url, due.body, headers, timeout=timeout, allow_http_loopback=allow_http, secrets=kept,
                target=target,
            )  # fmt: skip
            if outcome.ok:
                done.append((due, outcome))
                sent += 1
                # Successes are written in runs: one crash re-sends at most a run (same webhook-id).
                if len(done) >= COMMIT_EVERY or time.monotonic() - flushed > COMMIT_SECONDS:
                    service.record_successes(endpoint, done)
                    db.session.commit()
                    done, flushed = [], time.monotonic()
                continue
            service.record_successes(endpoint, done)
            delivery = db.session.get(WebhookDelivery, due.delivery_id)
            _, disabled = service.record_attempt(endpoint, delivery, outcome)
            db.session.commit()
            if disabled:
                relay_committed()  # the owners' email
                log.warning("webhook endpoint disabled after failing", extra={"data": {"endpoint_id": endpoint_id}})
            return sent
        service.record_successes(endpoint, done)
        db.session.commit()
    service.wake_endpoint(endpoint_id)  # out of time with work left: continue in a fresh job
    db.session.commit()
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
