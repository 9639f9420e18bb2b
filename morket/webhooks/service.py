"""Outbound webhooks: manage endpoints and secrets, emit events, record attempts, redeliver.

A secret enters the world once: ``create_endpoint`` and ``rotate_secret`` return it for the page
or API response that shows it, and from then on it exists only as AES-256-GCM ciphertext under
the workspace's key (``morket.core.crypto``), decrypted by the delivery job for the signature.
It is never logged, audited, put in a job payload or shown again.

Events are rows written in the same transaction as the change that caused them (``emit_event``),
with one delivery per subscribed, enabled endpoint and an outbox job naming the endpoint (ids
only), so an event exists exactly when its change committed. Which changes emit what is in
``morket.webhooks.emitters``.
"""

from __future__ import annotations

import json
import random
import secrets
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from flask import current_app
from sqlalchemy import any_, event, exists, func, select, text, update
from sqlalchemy.orm import Session

from morket.core.audit import record_audit
from morket.core.crypto import DecryptionError, decrypt_secret, encrypt_secret, key_fingerprint
from morket.core.db import utcnow
from morket.core.errors import Forbidden, MorketError, NotFound, ValidationFailed
from morket.core.jobs import QUEUE_IO, enqueue_after_commit
from morket.core.roles import OWNER, can
from morket.core.rotation import Move, reseal_batch
from morket.core.urlsafety import UnsafeUrl
from morket.extensions import db
from morket.webhooks import delivery as transport
from morket.webhooks.models import WebhookAttempt, WebhookDelivery, WebhookEndpoint, WebhookEvent
from morket.webhooks.signing import generate_secret

if TYPE_CHECKING:
    from morket.core.types import Actor, Workspace

# Event types a workspace may subscribe to, with the label the page shows.
EVENT_TYPES: dict[str, str] = {
    "row.created": "Rows created",
    "row.updated": "Rows updated",
    "row.deleted": "Rows deleted",
    "enrichment.cell_completed": "Enrichment cells completed",
    "run.finished": "Enrichment run finished",
    "import.finished": "CSV import finished",
    "export.finished": "CSV export finished",
    "crm.push_finished": "CRM push finished",
}
TEST_EVENT = "webhook.test"
DESCRIPTION_MAX = 200
MAX_ENDPOINTS = 20
DELIVERY_PAGE = 50
# Test events and redeliveries a person may ask for: each is a request to someone's server.
SEND_LIMIT = "20/minute"


class EndpointUnreadable(MorketError):
    """The endpoint's secret does not decrypt with the current master key."""

    status = 409
    code = "webhook_secret_unreadable"


def _settings() -> dict[str, Any]:
    return current_app.config["MORKET"]


def allow_http_loopback() -> bool:
    """Whether http to loopback is allowed: only when set, and never in production."""
    settings = _settings()
    return bool(settings.get("WEBHOOK_ALLOW_HTTP_LOOPBACK")) and settings.get("ENV") != "production"


def _master_key() -> bytes:
    key = _settings().get("MASTER_KEY")
    if not key:
        raise MorketError("Webhooks need the credentials master key (MORKET_MASTER_KEY) to store their secrets.")
    return key


def _purpose(endpoint: WebhookEndpoint) -> str:
    # Bound into the ciphertext: a secret copied to another endpoint or workspace does not decrypt.
    return f"webhook:{endpoint.uid}"


def _require(workspace: Workspace, actor: Actor | None, permission: str) -> None:
    from morket.workspaces.service import get_membership

    membership = get_membership(workspace, actor) if actor is not None else None  # type: ignore[arg-type]
    if membership is None:
        raise NotFound("Workspace not found.")
    if not can(membership.role, permission):
        raise Forbidden("Your role in this workspace does not allow this.")


def _clean_url(url: object) -> str:
    if not isinstance(url, str):
        raise ValidationFailed("Enter the URL that receives the events.", fields={"url": ["Enter a URL."]})
    url = url.strip()
    try:
        transport.check_target(url, allow_http_loopback=allow_http_loopback())
    except UnsafeUrl as exc:
        raise ValidationFailed(exc.message, fields={"url": [exc.message]}) from None
    return url


def _clean_description(description: object) -> str:
    if description is None:
        return ""
    if not isinstance(description, str):
        raise ValidationFailed("The description must be text.", fields={"description": ["Enter text."]})
    description = " ".join(description.split())
    if "\x00" in description or len(description) > DESCRIPTION_MAX:
        message = f"Use at most {DESCRIPTION_MAX} characters, without NUL."
        raise ValidationFailed(message, fields={"description": [message]})
    return description


def _clean_types(event_types: object) -> list[str]:
    if not isinstance(event_types, list | tuple) or not event_types:
        raise ValidationFailed(
            "Choose at least one event to send.", fields={"event_types": ["Choose at least one event."]}
        )
    unknown = [str(t)[:40] for t in event_types if t not in EVENT_TYPES]
    if unknown:
        raise ValidationFailed(
            f"Morket has no event named {unknown[0]!r}.",
            fields={"event_types": [f"Choose from: {', '.join(EVENT_TYPES)}."]},
        )
    return [t for t in EVENT_TYPES if t in event_types]


def list_endpoints(workspace: Workspace) -> list[WebhookEndpoint]:
    """The workspace's endpoints, oldest first."""
    return list(
        db.session.scalars(
            select(WebhookEndpoint).where(WebhookEndpoint.workspace_id == workspace.id).order_by(WebhookEndpoint.id)
        )
    )


def get_endpoint_or_404(workspace: Workspace, endpoint_id: int) -> WebhookEndpoint:
    """Endpoint ``endpoint_id`` of ``workspace``, or NotFound."""
    endpoint = db.session.scalar(
        select(WebhookEndpoint).where(WebhookEndpoint.id == endpoint_id, WebhookEndpoint.workspace_id == workspace.id)
    )
    if endpoint is None:
        raise NotFound("That webhook endpoint is not in this workspace.")
    return endpoint


def create_endpoint(
    workspace: Workspace,
    actor: Actor,
    url: str,
    event_types: Sequence[str],
    description: str | None = None,
    enabled: bool = True,
) -> tuple[WebhookEndpoint, str]:
    """Add an endpoint; return it and its new secret, which is shown this once and never again."""
    _require(workspace, actor, "webhooks.manage")
    url = _clean_url(url)
    types = _clean_types(list(event_types) if event_types is not None else None)
    description = _clean_description(description)
    count = db.session.scalar(
        select(func.count()).select_from(WebhookEndpoint).where(WebhookEndpoint.workspace_id == workspace.id)
    )
    if (count or 0) >= MAX_ENDPOINTS:
        raise ValidationFailed(f"A workspace can have at most {MAX_ENDPOINTS} webhook endpoints.")
    master = _master_key()
    secret = generate_secret()
    endpoint = WebhookEndpoint(
        workspace_id=workspace.id,
        uid=secrets.token_hex(8),
        url=url,
        description=description,
        event_types=types,
        enabled=bool(enabled),
        key_fingerprint=key_fingerprint(master),
        created_by_id=actor.id,
    )
    endpoint.secret_ciphertext = encrypt_secret(master, workspace.id, _purpose(endpoint), secret)
    db.session.info.pop(_UNSUBSCRIBED, None)
    db.session.add(endpoint)
    db.session.flush()
    record_audit(workspace, actor, "webhook.created", url[:200], endpoint_id=endpoint.id, event_types=types)
    return endpoint, secret


def update_endpoint(
    workspace: Workspace,
    actor: Actor,
    endpoint: WebhookEndpoint,
    *,
    url: str | None = None,
    event_types: Sequence[str] | None = None,
    description: str | None = None,
    enabled: bool | None = None,
) -> WebhookEndpoint:
    """Change an endpoint's URL, events, description or enabled flag (enabling clears a failure streak)."""
    _require(workspace, actor, "webhooks.manage")
    if endpoint.workspace_id != workspace.id:
        raise NotFound("That webhook endpoint is not in this workspace.")
    if url is not None:
        endpoint.url = _clean_url(url)
    if event_types is not None:
        endpoint.event_types = _clean_types(list(event_types))
    if description is not None:
        endpoint.description = _clean_description(description)
    if enabled is not None and bool(enabled) != endpoint.enabled:
        endpoint.enabled = bool(enabled)
        endpoint.disabled_reason = None if enabled else "Disabled by a person."
        if enabled:
            endpoint.failing_since = None
            _wake(endpoint)
    db.session.info.pop(_UNSUBSCRIBED, None)
    db.session.flush()
    record_audit(workspace, actor, "webhook.updated", endpoint.url[:200], endpoint_id=endpoint.id)
    return endpoint


def delete_endpoint(workspace: Workspace, actor: Actor, endpoint: WebhookEndpoint) -> None:
    """Delete an endpoint with its deliveries and their log."""
    _require(workspace, actor, "webhooks.manage")
    if endpoint.workspace_id != workspace.id:
        raise NotFound("That webhook endpoint is not in this workspace.")
    record_audit(workspace, actor, "webhook.deleted", endpoint.url[:200], endpoint_id=endpoint.id)
    db.session.delete(endpoint)
    db.session.flush()


def rotate_secret(workspace: Workspace, actor: Actor, endpoint: WebhookEndpoint) -> str:
    """Give the endpoint a new secret; the old one still signs (beside it) for the overlap period."""
    _require(workspace, actor, "webhooks.manage")
    if endpoint.workspace_id != workspace.id:
        raise NotFound("That webhook endpoint is not in this workspace.")
    master = _master_key()
    secret = generate_secret()
    endpoint.previous_ciphertext = endpoint.secret_ciphertext
    endpoint.previous_expires_at = utcnow() + timedelta(seconds=int(_settings()["WEBHOOK_ROTATION_OVERLAP"]))
    endpoint.secret_ciphertext = encrypt_secret(master, workspace.id, _purpose(endpoint), secret)
    endpoint.key_fingerprint = key_fingerprint(master)
    db.session.flush()
    record_audit(
        workspace,
        actor,
        "webhook.secret_rotated",
        endpoint.url[:200],
        endpoint_id=endpoint.id,
        previous_until=endpoint.previous_expires_at.isoformat(),
    )
    return secret


def signing_secrets(endpoint: WebhookEndpoint, now: datetime | None = None) -> list[str]:
    """The secrets that sign now: the current one, and the previous one during a rotation's overlap."""
    master = _master_key()
    try:
        found = [decrypt_secret(master, endpoint.workspace_id, _purpose(endpoint), endpoint.secret_ciphertext)]
        expires = endpoint.previous_expires_at
        if endpoint.previous_ciphertext is not None and expires is not None and expires > (now or utcnow()):
            found.append(
                decrypt_secret(master, endpoint.workspace_id, _purpose(endpoint), endpoint.previous_ciphertext)
            )
    except DecryptionError:
        raise EndpointUnreadable("The endpoint's secret does not decrypt with the current master key.") from None
    return found


# --- events --------------------------------------------------------------------------------------


def wake_endpoint(endpoint_id: int, part: str | None = None) -> None:
    """Queue the endpoint's delivery job after commit, once per transaction (ids only, never a secret).

    A bulk change that writes many events wakes each endpoint once: the job drains everything
    due for the endpoint, in event order.
    """
    transaction = db.session().get_transaction()
    woken = db.session.info.get("morket_webhooks_woken")
    if woken is None or woken[0] is not transaction:
        woken = (transaction, set())
        db.session.info["morket_webhooks_woken"] = woken
    if endpoint_id in woken[1]:
        return
    woken[1].add(endpoint_id)
    enqueue_after_commit(
        "morket.webhooks.tasks.deliver_endpoint",
        endpoint_id,
        queue=QUEUE_IO,
        job_id=f"webhook-endpoint-{endpoint_id}-{part or secrets.token_hex(6)}",
    )


def _wake(endpoint: WebhookEndpoint, part: str | None = None) -> None:
    wake_endpoint(endpoint.id, part)


# (workspace id, event type) pairs this transaction read to have no subscriber (``note_unsubscribed``).
_UNSUBSCRIBED = "morket_webhooks_unsubscribed"


def _subscribed(workspace_id: Any, event_type: str) -> list[Any]:
    return [
        WebhookEndpoint.workspace_id == workspace_id,
        WebhookEndpoint.enabled.is_(True),
        event_type == any_(WebhookEndpoint.event_types),
    ]


def subscribers_exist(workspace_id: Any, event_type: str) -> Any:
    """SQL: whether an enabled endpoint of the workspace subscribes to ``event_type``, to fold into
    another query of the same transaction (then ``note_unsubscribed`` when it is false)."""
    return exists().where(*_subscribed(workspace_id, event_type))


def note_unsubscribed(workspace_id: int, event_type: str) -> None:
    """Remember, until this transaction ends or an endpoint is saved, that nobody subscribes:
    ``subscribed_endpoints`` then answers without a read."""
    db.session.info.setdefault(_UNSUBSCRIBED, set()).add((workspace_id, event_type))


@event.listens_for(Session, "after_commit")
@event.listens_for(Session, "after_rollback")
def _forget_unsubscribed(session: Session) -> None:
    session.info.pop(_UNSUBSCRIBED, None)


def subscribed_endpoints(workspace_id: int, event_type: str) -> list[WebhookEndpoint]:
    """The enabled endpoints of the workspace that subscribe to ``event_type``."""
    if (workspace_id, event_type) in db.session.info.get(_UNSUBSCRIBED, ()):
        return []
    return list(db.session.scalars(select(WebhookEndpoint).where(*_subscribed(workspace_id, event_type))))


def _new_event(workspace_id: int, event_type: str, data: dict[str, Any]) -> WebhookEvent:
    uid = "msg_" + secrets.token_urlsafe(18)
    now = utcnow()
    payload = {"type": event_type, "timestamp": now.isoformat().replace("+00:00", "Z"), "data": data}
    event = WebhookEvent(workspace_id=workspace_id, uid=uid, type=event_type, payload=payload, created_at=now)
    db.session.add(event)
    db.session.flush()
    return event


def emit_event(
    workspace_id: int, event_type: str, data: dict[str, Any], endpoints: Iterable[WebhookEndpoint] | None = None
) -> WebhookEvent | None:
    """Write an event and its deliveries in the caller's transaction; None when nobody subscribes.

    ``data`` must be JSON values and never a secret. The delivery jobs reach RQ after the commit
    (the outbox), so an event rolled back with its change is never sent.
    """
    if event_type not in EVENT_TYPES:
        raise ValueError(f"unknown webhook event type {event_type!r}")
    targets = list(endpoints) if endpoints is not None else subscribed_endpoints(workspace_id, event_type)
    if not targets:
        return None
    event = _new_event(workspace_id, event_type, data)
    for endpoint in targets:
        db.session.add(WebhookDelivery(workspace_id=workspace_id, endpoint_id=endpoint.id, event_id=event.id))
        _wake(endpoint, f"{event.id}")
    db.session.flush()
    return event


def send_test_event(workspace: Workspace, actor: Actor, endpoint: WebhookEndpoint) -> WebhookDelivery:
    """Queue a ``webhook.test`` event to this endpoint only; it is delivered in order after any waiting."""
    _require(workspace, actor, "webhooks.manage")
    if endpoint.workspace_id != workspace.id:
        raise NotFound("That webhook endpoint is not in this workspace.")
    if not endpoint.enabled:
        raise ValidationFailed("Enable the endpoint to send it a test event.")
    data = {"workspace": {"id": workspace.id, "slug": workspace.slug}, "message": "A test event from Morket."}
    event = _new_event(workspace.id, TEST_EVENT, data)
    delivery = WebhookDelivery(workspace_id=workspace.id, endpoint_id=endpoint.id, event_id=event.id)
    db.session.add(delivery)
    db.session.flush()
    _wake(endpoint, f"{event.id}")
    return delivery


# --- deliveries ----------------------------------------------------------------------------------


def list_deliveries(
    workspace: Workspace, endpoint: WebhookEndpoint, limit: int = DELIVERY_PAGE, before_id: int | None = None
) -> list[tuple[WebhookDelivery, WebhookEvent]]:
    """The endpoint's deliveries, newest first, with their events."""
    stmt = (
        select(WebhookDelivery, WebhookEvent)
        .join(WebhookEvent, WebhookEvent.id == WebhookDelivery.event_id)
        .where(WebhookDelivery.workspace_id == workspace.id, WebhookDelivery.endpoint_id == endpoint.id)
        .order_by(WebhookDelivery.id.desc())
        .limit(max(1, min(limit, 200)))
    )
    if before_id is not None:
        stmt = stmt.where(WebhookDelivery.id < before_id)
    return [(d, e) for d, e in db.session.execute(stmt).all()]


def get_delivery_or_404(workspace: Workspace, delivery_id: int) -> WebhookDelivery:
    """Delivery ``delivery_id`` of ``workspace``, or NotFound."""
    found = db.session.scalar(
        select(WebhookDelivery).where(WebhookDelivery.id == delivery_id, WebhookDelivery.workspace_id == workspace.id)
    )
    if found is None:
        raise NotFound("That delivery is not in this workspace.")
    return found


def list_attempts(workspace: Workspace, deliveries: Sequence[int]) -> dict[int, list[WebhookAttempt]]:
    """Every attempt of the given deliveries, oldest first, by delivery id."""
    found: dict[int, list[WebhookAttempt]] = {d: [] for d in deliveries}
    if not deliveries:
        return found
    rows = db.session.scalars(
        select(WebhookAttempt)
        .where(WebhookAttempt.workspace_id == workspace.id, WebhookAttempt.delivery_id.in_(list(deliveries)))
        .order_by(WebhookAttempt.id)
    )
    for attempt in rows:
        found[attempt.delivery_id].append(attempt)
    return found


def redeliver(workspace: Workspace, actor: Actor, delivery: WebhookDelivery) -> WebhookDelivery:
    """Send a delivery again with the same ``webhook-id`` (receivers that dedupe treat it as one event)."""
    _require(workspace, actor, "webhooks.manage")
    if delivery.workspace_id != workspace.id:
        raise NotFound("That delivery is not in this workspace.")
    endpoint = db.session.get(WebhookEndpoint, delivery.endpoint_id)
    if endpoint is None:
        raise NotFound("That webhook endpoint is not in this workspace.")
    delivery.status, delivery.next_attempt_at, delivery.finished_at = "pending", utcnow(), None
    db.session.flush()
    _wake(endpoint)
    record_audit(workspace, actor, "webhook.redelivered", endpoint.url[:200], delivery_id=delivery.id)
    return delivery


def retry_delay(attempts: int, schedule: Sequence[float]) -> float | None:
    """Seconds before the next try after ``attempts`` failures (±20% jitter), None when the schedule ran out."""
    if attempts > len(schedule):
        return None
    base = float(schedule[attempts - 1])
    return base * random.uniform(0.8, 1.2)  # jitter spreads retries, not security


def record_attempt(
    endpoint: WebhookEndpoint, delivery: WebhookDelivery, outcome: transport.Outcome
) -> tuple[WebhookDelivery, bool]:
    """Log one attempt and move the delivery on; return it and whether the endpoint was just disabled.

    A success clears the endpoint's failure streak. A failure schedules the next try; when the
    schedule has run out (about 24 hours by default) the delivery fails and the endpoint is
    disabled, and its owners are emailed.
    """
    now = utcnow()
    db.session.add(
        WebhookAttempt(
            workspace_id=delivery.workspace_id,
            delivery_id=delivery.id,
            attempted_at=now,
            ok=outcome.ok,
            status_code=outcome.status_code,
            latency_ms=outcome.latency_ms,
            response_excerpt=outcome.excerpt,
            error=outcome.error,
        )
    )
    delivery.attempts += 1
    delivery.last_status_code = outcome.status_code
    if outcome.ok:
        delivery.status, delivery.finished_at = "succeeded", now
        endpoint.failing_since = None
        db.session.flush()
        return delivery, False
    delivery.first_failed_at = delivery.first_failed_at or now
    endpoint.failing_since = endpoint.failing_since or now
    delay = retry_delay(delivery.attempts, _settings()["WEBHOOK_RETRY_SCHEDULE"])
    if delay is not None:
        delivery.next_attempt_at = now + timedelta(seconds=delay)
        db.session.flush()
        return delivery, False
    delivery.status, delivery.finished_at = "failed", now
    disabled = endpoint.enabled
    if disabled:
        _disable_for_failures(endpoint, delivery, outcome)
    db.session.flush()
    return delivery, disabled


def _disable_for_failures(endpoint: WebhookEndpoint, delivery: WebhookDelivery, outcome: transport.Outcome) -> None:
    from morket.mail.service import absolute_url, send_email
    from morket.workspaces.models import Membership, Workspace

    since = endpoint.failing_since or delivery.first_failed_at or utcnow()
    reason = outcome.error or (f"HTTP {outcome.status_code}" if outcome.status_code else "no answer")
    endpoint.enabled = False
    endpoint.disabled_reason = f"Disabled automatically: deliveries failed since {since:%Y-%m-%d %H:%M} UTC ({reason})."
    # Later events for it wait as they are: enabling the endpoint again sends them in order.
    workspace = db.session.get(Workspace, endpoint.workspace_id)
    record_audit(workspace, None, "webhook.auto_disabled", endpoint.url[:200], endpoint_id=endpoint.id)
    owners = db.session.scalars(
        select(Membership).where(Membership.workspace_id == endpoint.workspace_id, Membership.role == OWNER)
    )
    link = absolute_url("webhooks.index", slug=workspace.slug)
    for membership in owners:
        send_email(
            membership.user.email,
            f"Webhook endpoint disabled in {workspace.name}",
            "webhook_disabled",
            workspace=workspace,
            endpoint=endpoint,
            since=since,
            reason=reason,
            link=link,
        )


@dataclass(frozen=True)
class Due:
    """What one delivery's send needs, read once (plain values survive the commits between sends)."""

    delivery_id: int
    workspace_id: int
    attempts: int
    event_uid: str
    body: bytes


def body_for(uid: str, payload: dict[str, Any]) -> bytes:
    """The exact bytes sent (and signed) for the event ``uid`` with ``payload``."""
    return json.dumps({"id": uid, **payload}, separators=(",", ":"), ensure_ascii=False, sort_keys=True).encode()


def event_body(event: WebhookEvent) -> bytes:
    """The exact bytes sent (and signed) for ``event``."""
    return body_for(event.uid, event.payload)


def due_batch(endpoint_id: int, limit: int = 100) -> list[Due]:
    """The endpoint's oldest pending deliveries in event order, up to the first that is not due yet.

    The later ones wait behind a delivery that waits for its retry: order per endpoint holds.
    """
    now = utcnow()
    # Plain columns, not entities: building ORM objects for every event cost more than the POST.
    rows = db.session.execute(
        select(
            WebhookDelivery.id,
            WebhookDelivery.workspace_id,
            WebhookDelivery.attempts,
            WebhookDelivery.next_attempt_at,
            WebhookEvent.uid,
            WebhookEvent.payload,
        )
        .join(WebhookEvent, WebhookEvent.id == WebhookDelivery.event_id)
        .where(WebhookDelivery.endpoint_id == endpoint_id, WebhookDelivery.status == "pending")
        .order_by(WebhookDelivery.event_id, WebhookDelivery.id)
        .limit(limit)
    ).all()
    due = []
    for delivery_id, workspace_id, attempts, next_attempt_at, uid, payload in rows:
        if next_attempt_at > now:
            break
        due.append(Due(delivery_id, workspace_id, attempts, uid, body_for(uid, payload)))
    return due


# One round trip for a run of successes: the deliveries marked succeeded and their attempts logged by
# one statement over typed arrays (the same text every time, so the driver prepares it once).
_RECORD_SUCCESSES = text(
    """
    WITH sent AS (
      SELECT * FROM unnest(CAST(:delivery_ids AS bigint[]), CAST(:workspace_ids AS bigint[]),
                           CAST(:status_codes AS integer[]), CAST(:latencies AS integer[]),
                           CAST(:excerpts AS text[])) AS s(delivery_id, workspace_id, status_code, latency_ms, excerpt)
    ), marked AS (
      UPDATE webhook_deliveries AS d
      SET status = 'succeeded', attempts = d.attempts + 1, last_status_code = s.status_code, finished_at = :now
      FROM sent AS s
      WHERE d.id = s.delivery_id AND d.status = 'pending'
    )
    INSERT INTO webhook_attempts
      (workspace_id, delivery_id, attempted_at, ok, status_code, latency_ms, response_excerpt, error)
    SELECT workspace_id, delivery_id, :now, true, status_code, latency_ms, excerpt, NULL FROM sent
    """
)


def record_successes(endpoint: WebhookEndpoint, done: Sequence[tuple[Due, transport.Outcome]]) -> None:
    """Log a run of successful attempts and mark their deliveries succeeded (one statement)."""
    if not done:
        return
    db.session.execute(
        _RECORD_SUCCESSES,
        {
            "now": utcnow(),
            "delivery_ids": [d.delivery_id for d, _ in done],
            "workspace_ids": [d.workspace_id for d, _ in done],
            "status_codes": [o.status_code for _, o in done],
            "latencies": [o.latency_ms for _, o in done],
            "excerpts": [o.excerpt for _, o in done],
        },
    )
    if endpoint.failing_since is not None:
        endpoint.failing_since = None


def endpoints_with_due_deliveries(limit: int = 500) -> list[int]:
    """Ids of enabled endpoints whose oldest pending delivery is due (for the periodic sweep)."""
    now = utcnow()
    rows = db.session.execute(
        select(WebhookDelivery.endpoint_id, func.min(WebhookDelivery.next_attempt_at))
        .join(WebhookEndpoint, WebhookEndpoint.id == WebhookDelivery.endpoint_id)
        .where(WebhookDelivery.status == "pending", WebhookEndpoint.enabled.is_(True))
        .group_by(WebhookDelivery.endpoint_id)
        .limit(limit)
    ).all()
    return [endpoint_id for endpoint_id, due in rows if due <= now]


def drop_pending_of(endpoint_id: int) -> int:
    """Mark an endpoint's pending deliveries failed (used when the endpoint is gone or unreadable)."""
    result = db.session.execute(
        update(WebhookDelivery)
        .where(WebhookDelivery.endpoint_id == endpoint_id, WebhookDelivery.status == "pending")
        .values(status="failed", finished_at=utcnow())
    )
    return result.rowcount or 0


def reencrypt_batch(
    old_master: bytes, new_master: bytes, *, after_id: int = 0, limit: int = 200
) -> tuple[int, list[int], int]:
    """Re-seal up to ``limit`` endpoints still under ``old_master`` with ``new_master`` (the caller commits).

    Both the current secret and, during a rotation's overlap, the previous one are re-sealed; the
    secrets themselves do not change, so receivers keep verifying. Returns (re-encrypted, ids that
    did not decrypt, last id seen), like the other stores ``flask credentials rotate-master-key`` walks.
    """

    def reseal(endpoint: WebhookEndpoint, move: Move) -> None:
        purpose = _purpose(endpoint)
        current = move(endpoint.secret_ciphertext, purpose)
        previous = None
        if endpoint.previous_ciphertext is not None:
            previous = move(endpoint.previous_ciphertext, purpose)
        endpoint.secret_ciphertext = current
        if previous is not None:
            endpoint.previous_ciphertext = previous

    return reseal_batch(WebhookEndpoint, old_master, new_master, reseal, after_id=after_id, limit=limit)
