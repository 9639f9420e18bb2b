"""Inbound webhook sources over the JSON API, and the inbound URL itself.

``POST /api/v1/hooks/in/<token>`` is called by other systems, not by users: no session, no CSRF,
authenticated by the source's secret (or its Standard Webhooks signature), limited per source.
Managing sources (create, read, change the mapping, rotate, delete, failed payloads, replay) takes a
user's token or an API key with the tables permissions: viewers read a source's status only.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from flask import g, request
from pydantic import Field

from morket.api.routing import Principal, api_route
from morket.api.schemas import DeletedOut, Out, Request
from morket.core.errors import NotFound, Unauthorized
from morket.core.logging import log_security_event
from morket.core.ratelimit import client_ip
from morket.extensions import db
from morket.inbound import service
from morket.inbound.models import InboundFailure, InboundSource
from morket.search import service as search
from morket.tables import service as tables

TAG = "Inbound webhooks"
UNKNOWN_SOURCE_LIMIT = "60/minute"


class SourceCreate(Request):
    """A new inbound source; its secret is in the answer, once."""

    name: str = Field(min_length=1, max_length=service.NAME_MAX, examples=["Signup form"])
    require_signature: bool = Field(
        default=False, description="Take only Standard Webhooks-signed requests (no secret in a header)."
    )


class SourceUpdate(Request):
    """What to change; absent fields stay as they are. ``upsert_column_id: null`` turns upserts off."""

    name: str | None = Field(default=None, min_length=1, max_length=service.NAME_MAX)
    records_path: str | None = Field(
        default=None,
        max_length=300,
        description='JSON path to the records in a body, e.g. "$.contacts"; "" for the body.',
    )
    columns: dict[str, str] | None = Field(
        default=None,
        description='Column id or name → JSON path, e.g. {"Email": "$.contact.email"}; replaces the mapping.',
    )
    upsert_column_id: int | None = Field(
        default=None, description="A mapped column whose normalised value identifies a row."
    )
    rate_per_minute: int | None = Field(default=None, ge=service.RATE_MIN, le=service.RATE_MAX)
    max_body_bytes: int | None = Field(
        default=None,
        ge=service.BODY_MIN,
        description="Bodies over this many bytes are refused with 413 (at most 1 MiB).",
    )
    require_signature: bool | None = None


class ReceiptOut(Out):
    at: datetime
    inserted: int
    updated: int


class SourceOut(Out):
    """An inbound source: where to post, how it maps, what it received. Never its secret."""

    id: int
    table_id: int
    name: str
    url: str = Field(description="POST JSON here with the secret or a Standard Webhooks signature.")
    require_signature: bool
    records_path: str
    columns: dict[str, str] = Field(description="Column id → JSON path.")
    upsert_column_id: int | None
    rate_per_minute: int
    max_body_bytes: int
    requests_accepted: int
    rows_inserted: int
    rows_updated: int
    failed_payloads: int
    last_received_at: datetime | None
    recent: list[ReceiptOut]
    created_at: datetime


class SourceCreatedOut(SourceOut):
    secret: str = Field(description="Shown only now; store it in the sending system.")


class SecretOut(Out):
    secret: str = Field(description="The new secret, shown only now; the old one no longer works.")


class FailureOut(Out):
    """A payload the source refused, kept to inspect and replay."""

    id: int
    created_at: datetime
    status: int
    code: str
    message: str
    fields: dict[str, list[str]]
    replays: int
    body: str = Field(description="The body as received (cut at 4,000 characters here).")


class ReceivedOut(Out):
    inserted: int
    updated: int
    duplicate: bool = Field(default=False, description="A signed message already written (its webhook-id was seen).")


def _out(source: InboundSource, failures: int | None = None) -> dict[str, Any]:
    mapping = source.mapping or {}
    if failures is None:
        failures = service.failure_count(source)
    return {
        "id": source.id,
        "table_id": source.table_id,
        "name": source.name,
        "url": service.source_url(source),
        "require_signature": source.require_signature,
        "records_path": mapping.get("records", ""),
        "columns": dict(mapping.get("columns", {})),
        "upsert_column_id": source.upsert_column_id,
        "rate_per_minute": source.rate_per_minute,
        "max_body_bytes": source.max_body_bytes,
        "requests_accepted": source.requests_accepted,
        "rows_inserted": source.rows_inserted,
        "rows_updated": source.rows_updated,
        "failed_payloads": failures,
        "last_received_at": source.last_received_at,
        "recent": source.recent or [],
        "created_at": source.created_at,
    }


def _failure_out(failure: InboundFailure) -> FailureOut:
    return FailureOut(
        id=failure.id,
        created_at=failure.created_at,
        status=failure.status,
        code=failure.code,
        message=failure.message,
        fields=failure.fields or {},
        replays=failure.replays,
        body=service.body_text(failure),
    )


@api_route(
    "/tables/<int:table_id>/inbound-sources",
    "GET",
    summary="List a table's inbound webhook sources",
    tag=TAG,
    permission="tables.view",
    response=list[SourceOut],
)
def list_inbound_sources(principal: Principal, table_id: int) -> list[SourceOut]:
    """The table's inbound URLs with their mapping and what they received; never their secrets."""
    table = tables.get_table_or_404(principal.workspace, table_id)
    return [SourceOut(**_out(s)) for s in service.list_sources(principal.workspace, table)]


@api_route(
    "/tables/<int:table_id>/inbound-sources",
    "POST",
    summary="Create an inbound webhook source",
    tag=TAG,
    permission="tables.manage",
    body=SourceCreate,
    response=SourceCreatedOut,
    status=201,
)
def create_inbound_source(principal: Principal, body: SourceCreate, table_id: int) -> SourceCreatedOut:
    """Create an inbound URL for the table; the answer carries its secret, which is never shown again."""
    table = tables.get_table_or_404(principal.workspace, table_id)
    source, secret = service.create_source(
        principal.workspace, principal.user, table, body.name, require_signature=body.require_signature
    )
    out = SourceCreatedOut(**_out(source, 0), secret=secret)
    db.session.commit()
    return out


@api_route(
    "/inbound-sources/<int:source_id>",
    "GET",
    summary="Read an inbound webhook source",
    tag=TAG,
    permission="tables.view",
    response=SourceOut,
)
def get_inbound_source(principal: Principal, source_id: int) -> SourceOut:
    """The source's URL, mapping, counters and last receipts."""
    return SourceOut(**_out(service.get_source_or_404(principal.workspace, source_id)))


@api_route(
    "/inbound-sources/<int:source_id>",
    "PATCH",
    summary="Change an inbound source's mapping, upsert key, rate or name",
    tag=TAG,
    permission="tables.manage",
    body=SourceUpdate,
    response=SourceOut,
)
def update_inbound_source(principal: Principal, body: SourceUpdate, source_id: int) -> SourceOut:
    """Paths are checked when saved; every bad one is named in ``error.fields`` and nothing changes."""
    source = service.get_source_or_404(principal.workspace, source_id)
    sent = body.model_fields_set
    service.update_source(
        principal.workspace,
        principal.user,
        source,
        name=body.name,
        records_path=body.records_path,
        columns=body.columns,
        upsert_column_id=body.upsert_column_id if "upsert_column_id" in sent else False,
        rate_per_minute=body.rate_per_minute,
        max_body_bytes=body.max_body_bytes,
        require_signature=body.require_signature,
    )
    out = SourceOut(**_out(source))
    db.session.commit()
    return out


@api_route(
    "/inbound-sources/<int:source_id>/rotate-secret",
    "POST",
    summary="Give an inbound source a new secret",
    tag=TAG,
    permission="tables.manage",
    response=SecretOut,
)
def rotate_inbound_secret(principal: Principal, source_id: int) -> SecretOut:
    """The new secret is in the answer, once; the old one stops working now."""
    source = service.get_source_or_404(principal.workspace, source_id)
    out = SecretOut(secret=service.rotate_secret(principal.workspace, principal.user, source))
    db.session.commit()
    return out


@api_route(
    "/inbound-sources/<int:source_id>",
    "DELETE",
    summary="Delete an inbound webhook source",
    tag=TAG,
    permission="tables.manage",
    response=DeletedOut,
)
def delete_inbound_source(principal: Principal, source_id: int) -> DeletedOut:
    """Its URL answers 404 from now on; rows it wrote stay in the table."""
    service.delete_source(
        principal.workspace, principal.user, service.get_source_or_404(principal.workspace, source_id)
    )
    db.session.commit()
    return DeletedOut(id=source_id)


@api_route(
    "/inbound-sources/<int:source_id>/failures",
    "GET",
    summary="List the payloads an inbound source refused",
    tag=TAG,
    permission="tables.edit",
    response=list[FailureOut],
)
def list_inbound_failures(principal: Principal, source_id: int) -> list[FailureOut]:
    """Newest first; the last 50 (and at most 8 MB) are kept."""
    source = service.get_source_or_404(principal.workspace, source_id)
    return [_failure_out(f) for f in service.list_failures(principal.workspace, source)]


@api_route(
    "/inbound-sources/<int:source_id>/failures/<int:failure_id>/replay",
    "POST",
    summary="Replay a refused payload through the current mapping",
    tag=TAG,
    permission="tables.manage",
    response=ReceivedOut,
    errors=(400, 422),
)
def replay_inbound_failure(principal: Principal, source_id: int, failure_id: int) -> ReceivedOut:
    """Written rows remove the payload from the list; a payload still refused stays, with the new reason."""
    workspace = principal.workspace
    source = service.get_source_or_404(workspace, source_id)
    try:
        result = service.replay_failure(workspace, principal.user, source, failure_id)
    except service.Refused as exc:
        db.session.rollback()
        service.note_replay_refused(workspace, service.get_source_or_404(workspace, source_id), failure_id, exc)
        db.session.commit()
        raise
    out = ReceivedOut(inserted=result.inserted, updated=result.updated)
    db.session.commit()
    return out


# --- the inbound URL -----------------------------------------------------------------------------------


def _inbound_key() -> str:
    return f"inbound:{(request.view_args or {}).get('token', '')[:64]}"


def _inbound_limit() -> str:
    """The source's own rate (looked up once; the view reuses what was found)."""
    found = service.find_source((request.view_args or {}).get("token", ""))
    g.inbound_found = found
    return f"{found[0].rate_per_minute}/minute" if found else UNKNOWN_SOURCE_LIMIT


def _read_body(limit: int) -> bytes:
    """Read the body only when it fits the limit: a declared length over it is refused unread."""
    too_large = service.Refused(
        413,
        "payload_too_large",
        f"The body is larger than this source accepts ({limit:,} bytes).",
        {"body": ["too large"]},
    )
    if request.content_length is not None and request.content_length > limit:
        raise too_large
    # With no declared length (chunked), the app read at most its JSON limit + 1 bytes already.
    raw = request.get_data(cache=True) if request.content_length is not None else request.stream.read(limit + 1)
    if request.content_length is None and not raw:
        raw = request.get_data(cache=True)
    if len(raw) > limit:
        raise too_large
    return raw


@api_route(
    "/hooks/in/<token>",
    "POST",
    summary="Post rows to an inbound webhook source",
    tag=TAG,
    authenticated=False,
    response=ReceivedOut,
    limit=_inbound_limit,
    limit_key=_inbound_key,
    errors=(400, 401, 413, 415, 422),
    description=(
        "Send a JSON object (one row) or an array of objects (one row each) with the source's secret in "
        "X-Morket-Secret or Authorization: Bearer, or signed per Standard Webhooks (webhook-id, webhook-timestamp, "
        "webhook-signature; 5 minutes' tolerance). A refused body writes nothing, is answered with the problem "
        "named, and is kept for replay. Limited per source (429 with Retry-After)."
    ),
)
def receive_inbound_webhook(token: str) -> ReceivedOut:
    """Map the posted JSON to rows of the source's table in one transaction."""
    found = g.pop("inbound_found", None) or service.find_source(token)
    if found is None:
        raise NotFound("There is no inbound source at this address.")
    source, workspace = found
    if not request.is_json:
        raise service.Refused(415, "unsupported_media_type", "Send JSON with Content-Type: application/json.")
    raw = _read_body(source.max_body_bytes)
    try:
        message_id = service.authenticate(source, raw, request.headers)
    except Unauthorized as exc:
        log_security_event("inbound_auth_refused", source_id=source.id, ip=client_ip(), reason=exc.message)
        raise
    g.log_workspace_id = workspace.id
    if message_id and service.seen_message(source.id, message_id):
        return ReceivedOut(inserted=0, updated=0, duplicate=True)
    source_id, workspace_id, table_id = source.id, workspace.id, source.table_id
    search.defer_sync(table_id)  # one debounced wake after the commit instead of an outbox job a request
    try:
        result = service.receive_payload(workspace, source, raw)
    except service.Refused as exc:
        db.session.rollback()
        service.record_failure(source_id, workspace_id, raw, exc)
        db.session.commit()
        raise
    out = ReceivedOut(inserted=result.inserted, updated=result.updated)
    db.session.commit()
    search.wake_sync(table_id)
    service.remember_message(source_id, message_id or "")
    return out
