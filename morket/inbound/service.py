"""Inbound webhook sources: create, map, rotate and delete them; receive, refuse and replay payloads.

A source is a table's inbound URL (``/api/v1/hooks/in/<token>``). Its secret is encrypted with the
workspace's key (``core.crypto``, the token as associated data) and shown once, when it is created
or rotated. A request proves the secret either by sending it (``Authorization: Bearer`` or
``X-Morket-Secret``, compared in constant time) or by a Standard Webhooks signature over the body
(``webhook-id``/``-timestamp``/``-signature``, 5 minutes' tolerance); a source can demand the signature.

``receive_payload`` maps the JSON body to rows and writes them through the tables surface under the
table's row lock (one insert per request, formulas and the rows-changed listeners follow); with an
upsert key, rows whose normalised key (dedupe's normaliser) is already in the table are updated
instead. It raises ``Refused`` naming the problem and writes nothing; the caller rolls back and keeps
the payload with ``record_failure`` so a person can fix the mapping and ``replay_failure`` it.

Functions take ``workspace`` and ``actor`` explicitly, flush but never commit.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import sqlalchemy as sa
from flask import current_app
from sqlalchemy import delete, func, select
from sqlalchemy.dialects.postgresql import JSONB, JSONPATH
from sqlalchemy.orm import defer, joinedload
from sqlalchemy.orm.attributes import set_committed_value

from morket.core.db import utcnow
from morket.core.errors import NotFound, ValidationFailed
from morket.core.normalise import normalised_sql
from morket.core.types import Actor, Workspace
from morket.dataops.dedupe import default_kind
from morket.extensions import db
from morket.inbound.mapping import MappingError, compile_path, map_records, records_of, sample_keys
from morket.inbound.models import InboundFailure, InboundSource
from morket.inbound.signing import (  # noqa: F401 - callers know them as the service's
    MESSAGE_ID_TTL_S,
    SECRET_PREFIX,
    Refused,
    _new_secret,
    _seal,
    authenticate,
    remember_message,
    seen_message,
    source_secret,
)
from morket.tables import hooks, storage
from morket.tables import service as tables
from morket.tables.cells import CellError, parse_cell
from morket.tables.models import Column, Table
from morket.webhooks import service as webhooks
from morket.workspaces.models import Workspace as WorkspaceRow

NAME_MAX = 120
RATE_MIN, RATE_MAX, RATE_DEFAULT = 1, 6000, 600
BODY_MIN, BODY_DEFAULT = 1024, 1024 * 1024
RECENT_KEPT = 10
FAILURES_KEPT = 50
FAILURE_BYTES_KEPT = 8 * 1024 * 1024
SAMPLE_MAX_BYTES = 16 * 1024
SAMPLE_EVERY = 50  # a payload of an unchanged shape becomes the sample once in this many requests
PREVIEW_ROWS = 5
# Column types a payload cannot write: computed by Morket itself.
UNMAPPABLE_TYPES = frozenset({"formula", "enrichment", "ai"})
# The event a row written by a payload is announced as (outbound webhooks).
ROW_CREATED = "row.created"


@dataclass
class Received:
    """What one request wrote."""

    inserted: int = 0
    updated: int = 0
    row_ids: list[int] = field(default_factory=list)


@dataclass(frozen=True)
class PreviewRow:
    """One mapped record of the preview: each mapped column's value, or why the column refuses it."""

    values: dict[int, Any]
    errors: dict[int, str]


# --- sources ---------------------------------------------------------------------------------------


def _clean_name(raw: Any) -> str:
    name = " ".join(raw.split()) if isinstance(raw, str) else ""
    if not name or len(name) > NAME_MAX or "\x00" in name:
        raise ValidationFailed(
            f"Name the source (1 to {NAME_MAX} characters).", fields={"name": ["1 to 120 characters"]}
        )
    return name


def body_ceiling() -> int:
    """The largest body limit a source may have: the app's own JSON limit."""
    return int(current_app.config["MORKET"]["MAX_JSON_BYTES"])


def source_url(source: InboundSource) -> str:
    """The URL the sending system posts to."""
    return f"{current_app.config['MORKET']['BASE_URL'].rstrip('/')}/api/v1/hooks/in/{source.token}"


def failure_count(source: InboundSource) -> int:
    """How many refused payloads the source keeps."""
    return db.session.scalar(select(func.count()).where(InboundFailure.source_id == source.id)) or 0


def list_sources(workspace: Workspace, table: Table) -> list[InboundSource]:
    """Return the table's sources, oldest first."""
    tables.check_owned(workspace, table)
    return list(
        db.session.scalars(
            select(InboundSource)
            .where(InboundSource.workspace_id == workspace.id, InboundSource.table_id == table.id)
            .order_by(InboundSource.id)
        )
    )


def get_source_or_404(workspace: Workspace, source_id: int, *, table_id: int | None = None) -> InboundSource:
    """Return the workspace's source ``source_id`` (of ``table_id`` when given), or raise NotFound."""
    statement = select(InboundSource).where(InboundSource.id == source_id, InboundSource.workspace_id == workspace.id)
    if table_id is not None:
        statement = statement.where(InboundSource.table_id == table_id)
    source = db.session.scalar(statement)
    if source is None:
        raise NotFound("That inbound source does not exist.")
    return source


def create_source(
    workspace: Workspace, actor: Actor | None, table: Table, name: str, *, require_signature: bool = False
) -> tuple[InboundSource, str]:
    """Create a source for ``table``; return it and its secret (the only time the secret is readable)."""
    tables.check_owned(workspace, table)
    source = InboundSource(
        workspace_id=workspace.id,
        table_id=table.id,
        name=_clean_name(name),
        token=secrets.token_urlsafe(32),
        require_signature=bool(require_signature),
        mapping={"records": "", "columns": {}},
        rate_per_minute=RATE_DEFAULT,
        max_body_bytes=min(BODY_DEFAULT, body_ceiling()),
        recent=[],
        requests_accepted=0,
        rows_inserted=0,
        rows_updated=0,
        created_by_id=getattr(actor, "id", None),
    )
    secret = _new_secret()
    _seal(source, secret)
    db.session.add(source)
    db.session.flush()
    return source, secret


def rotate_secret(workspace: Workspace, actor: Actor | None, source: InboundSource) -> str:
    """Give the source a new secret and return it; the old one stops working at the commit."""
    _check(workspace, source)
    secret = _new_secret()
    _seal(source, secret)
    source.secret_rotated_at = utcnow()
    db.session.flush()
    return secret


def delete_source(workspace: Workspace, actor: Actor | None, source: InboundSource) -> None:
    """Delete the source and its failed payloads; its URL answers 404 from the commit on."""
    _check(workspace, source)
    db.session.delete(source)
    db.session.flush()


def _check(workspace: Workspace, source: InboundSource) -> None:
    if source.workspace_id != workspace.id:
        raise NotFound("That inbound source does not exist.")


def source_table(workspace: Workspace, source: InboundSource, *, lock: bool = False) -> Table:
    """Return the source's table (with the row lock for adding rows when ``lock``)."""
    return tables.get_table_or_404(workspace, source.table_id, lock="update" if lock else None)


def mapped_columns(table: Table, source: InboundSource) -> dict[int, str]:
    """Return {column id: path} of the mapping's columns that are still live in the table."""
    live = {c.id for c in table.live_columns if c.type not in UNMAPPABLE_TYPES}
    columns = (source.mapping or {}).get("columns", {})
    return {int(cid): path for cid, path in columns.items() if int(cid) in live}


def update_source(
    workspace: Workspace,
    actor: Actor | None,
    source: InboundSource,
    *,
    name: str | None = None,
    records_path: str | None = None,
    columns: Mapping[Any, str] | None = None,
    upsert_column_id: int | None | bool = False,
    rate_per_minute: int | None = None,
    max_body_bytes: int | None = None,
    require_signature: bool | None = None,
) -> InboundSource:
    """Change what is given: name, records path, column paths, upsert key (None clears it), limits, signatures."""
    _check(workspace, source)
    table = source_table(workspace, source)
    errors: dict[str, list[str]] = {}
    mapping = dict(source.mapping or {"records": "", "columns": {}})
    if name is not None:
        source.name = _clean_name(name)
    if records_path is not None:
        records_path = records_path.strip()
        if records_path:
            try:
                compile_path(records_path)
            except MappingError as exc:
                errors["records_path"] = [exc.message]
        mapping["records"] = records_path
    if columns is not None:
        live = {c.id: c for c in table.live_columns}
        cleaned: dict[str, str] = {}
        for key, path in columns.items():
            column = _column_by_key(table, key)
            if column is None or column.id not in live:
                errors[f"columns.{key}"] = ["no such column in this table"]
                continue
            if column.type in UNMAPPABLE_TYPES:
                errors[f"columns.{key}"] = [f"{column.type} columns are computed by Morket and cannot be mapped"]
                continue
            path = (path or "").strip() if isinstance(path, str) else ""
            if not path:
                continue
            try:
                compile_path(path)
            except MappingError as exc:
                errors[f"columns.{key}"] = [exc.message]
                continue
            cleaned[str(column.id)] = path
        mapping["columns"] = cleaned
    if upsert_column_id is not False:
        if upsert_column_id is None:
            source.upsert_column_id = None
        else:
            column = _column_by_key(table, upsert_column_id)
            if column is None or column.type in UNMAPPABLE_TYPES:
                errors["upsert_column_id"] = ["choose a column of this table that payloads write"]
            else:
                source.upsert_column_id = column.id
    if rate_per_minute is not None:
        if isinstance(rate_per_minute, bool) or not RATE_MIN <= int(rate_per_minute) <= RATE_MAX:
            errors["rate_per_minute"] = [f"{RATE_MIN} to {RATE_MAX} requests a minute"]
        else:
            source.rate_per_minute = int(rate_per_minute)
    if max_body_bytes is not None:
        if isinstance(max_body_bytes, bool) or not BODY_MIN <= int(max_body_bytes) <= body_ceiling():
            errors["max_body_bytes"] = [f"{BODY_MIN:,} to {body_ceiling():,} bytes"]
        else:
            source.max_body_bytes = int(max_body_bytes)
    if require_signature is not None:
        source.require_signature = bool(require_signature)
    if errors:
        first_key, first = next(iter(errors.items()))
        raise ValidationFailed(f"The source was not saved ({first_key}: {first[0]}).", fields=errors)
    if source.upsert_column_id is not None and str(source.upsert_column_id) not in mapping["columns"]:
        raise ValidationFailed(
            "Map the upsert key column to a path: rows are matched on the value it receives.",
            fields={"upsert_column_id": ["not mapped"]},
        )
    source.mapping = mapping
    db.session.flush()
    if source.upsert_column_id is not None:
        _index_upsert_key(table, source.upsert_column_id)
    return source


def _column_by_key(table: Table, key: Any) -> Column | None:
    live = table.live_columns
    if isinstance(key, int) and not isinstance(key, bool) or isinstance(key, str) and key.isdigit():
        return next((c for c in live if c.id == int(key)), None)
    if isinstance(key, str):
        return next((c for c in live if c.name.casefold() == key.casefold()), None)
    return None


def _key_sql(table: Table, column: Column, alias: str) -> str:
    return normalised_sql(f"{alias}.{column.storage_name}", default_kind(column.type))


def _index_upsert_key(table: Table, column_id: int) -> None:
    """Index the key column's normalised value so each request finds its rows without a scan.

    Only text-stored columns: their normaliser is immutable. Others are matched by a scan (correct,
    slower). The index goes with the column when the column is dropped or retyped.
    """
    column = next((c for c in table.live_columns if c.id == column_id), None)
    store = storage.storage_for(table)
    if column is None or not isinstance(store.columns[column.id].type, sa.Text):
        return
    name = f"ix_{table.storage_name}_key_{column.id}"
    with db.session.begin_nested():
        db.session.execute(
            sa.text(
                f'CREATE INDEX IF NOT EXISTS "{name}" ON {store.rows.fullname} '
                f"(({normalised_sql(column.storage_name, default_kind(column.type))}))"
            )
        )


# --- samples and the preview --------------------------------------------------------------------------


def _capped_sample(payload: Any) -> Any:
    """The payload, or its first record, or nothing, whichever fits the sample's cap."""
    for candidate in (payload, payload[0] if isinstance(payload, list) and payload else None):
        if candidate is not None and len(json.dumps(candidate, default=str)) <= SAMPLE_MAX_BYTES:
            return candidate
    return None


def set_sample(workspace: Workspace, actor: Actor | None, source: InboundSource, text: str) -> Any:
    """Keep a pasted sample payload for the preview; bad JSON is a ValidationFailed naming the place."""
    _check(workspace, source)
    try:
        payload = json.loads(text)
    except ValueError as exc:
        raise ValidationFailed(f"The sample is not valid JSON: {exc}.", fields={"sample": [str(exc)]}) from None
    if not isinstance(payload, dict | list):
        raise ValidationFailed("A sample is a JSON object or array.", fields={"sample": ["object or array"]})
    capped = _capped_sample(payload)
    if capped is None:
        raise ValidationFailed(
            f"Paste a smaller sample (at most {SAMPLE_MAX_BYTES // 1024} KB).", fields={"sample": ["too large"]}
        )
    source.sample = capped
    db.session.flush()
    return capped


def sample_fields(source: InboundSource) -> list[str]:
    """The dotted paths of the sample's first record, to map or turn into columns."""
    if source.sample is None:
        return []
    return sample_keys(source.sample, (source.mapping or {}).get("records", ""))


def create_columns_from_sample(
    workspace: Workspace, actor: Actor | None, source: InboundSource, paths: list[str]
) -> list[Column]:
    """Add a text column for each of the sample's ``paths`` and map it to that path."""
    _check(workspace, source)
    table = source_table(workspace, source, lock=True)
    offered = set(sample_fields(source))
    unknown = [p for p in paths if p not in offered]
    if not paths or unknown:
        raise ValidationFailed(
            "Choose fields of the sample to add as columns.",
            fields={"paths": [f"not in the sample: {p}" for p in unknown[:5]] or ["none chosen"]},
        )
    taken = {c.name.casefold() for c in table.live_columns}
    added: list[Column] = []
    columns = dict((source.mapping or {}).get("columns", {}))
    for path in paths:
        name = path.replace(".", " ").replace("_", " ").strip()[:NAME_MAX] or path
        base, n = name, 2
        while name.casefold() in taken:
            name, n = f"{base} {n}", n + 1
        column = tables.add_column(workspace, actor, table, name, _guess_type(path))
        taken.add(name.casefold())
        columns[str(column.id)] = path
        added.append(column)
    source.mapping = {**(source.mapping or {}), "columns": columns}
    db.session.flush()
    return added


def _guess_type(path: str) -> str:
    last = path.rsplit(".", 1)[-1].lower()
    if "email" in last:
        return "email"
    if last in {"domain", "website_domain"}:
        return "domain"
    if last in {"url", "website", "linkedin", "linkedin_url"}:
        return "url"
    return "text"


def preview(table: Table, source: InboundSource, payload: Any) -> tuple[list[PreviewRow], str | None]:
    """Map ``payload`` as a request would and return the first rows, each cell's value or its refusal."""
    columns = mapped_columns(table, source)
    try:
        records = records_of(payload, (source.mapping or {}).get("records", ""))
    except MappingError as exc:
        return [], exc.message
    compiled = {cid: compile_path(path) for cid, path in columns.items()}
    by_id = {c.id: c for c in table.live_columns}
    rows: list[PreviewRow] = []
    for record in records[:PREVIEW_ROWS]:
        values: dict[int, Any] = {}
        errors: dict[int, str] = {}
        for cid, path in compiled.items():
            try:
                raw = map_records([record], {cid: path}, {})[0].get(cid)
            except MappingError:
                continue
            column = by_id[cid]
            try:
                values[cid] = parse_cell(column.type, column.config or {}, raw)
            except CellError as exc:
                errors[cid] = str(exc)
        rows.append(PreviewRow(values, errors))
    return rows, None if columns else "Map at least one column to see the preview."


# --- receiving ---------------------------------------------------------------------------------------


@lru_cache(maxsize=1)
def _find_source_statement() -> sa.Select:
    """The source's lookup, built once per process (the token is its one parameter). The same read
    learns whether a write of rows has ordered views to mark stale or endpoints to tell: when not
    (the usual case), the rest of the transaction skips those two reads."""
    return (
        select(
            InboundSource,
            WorkspaceRow,
            Table,
            tables.fresh_orders_exist(InboundSource.table_id),
            webhooks.subscribers_exist(InboundSource.workspace_id, ROW_CREATED),
            sa.literal_column(_SAMPLE_KEYS_SQL),
        )
        .join(WorkspaceRow, WorkspaceRow.id == InboundSource.workspace_id)
        .join(Table, sa.and_(Table.id == InboundSource.table_id, Table.workspace_id == InboundSource.workspace_id))
        .where(InboundSource.token == sa.bindparam("token"))
        .options(defer(InboundSource.sample), joinedload(Table.columns))
    )


# The stored sample's shape (its first record's top-level keys, sorted) instead of the sample itself:
# a request rewrites the sample only when its own shape differs, or every ``SAMPLE_EVERY`` requests.
# (As JSON text: the row's values are hashed when the table's columns are collected.)
_SAMPLE_KEYS_SQL = """(SELECT CAST(jsonb_agg(k ORDER BY k) AS text) FROM jsonb_object_keys(CASE
  WHEN jsonb_typeof(inbound_sources.sample) = 'object' THEN inbound_sources.sample
  WHEN jsonb_typeof(inbound_sources.sample -> 0) = 'object' THEN inbound_sources.sample -> 0
  ELSE '{}'::jsonb END) AS k)"""


def _first_keys(payload: Any) -> list[str] | None:
    first = payload[0] if isinstance(payload, list) and payload else payload
    return sorted(first) if isinstance(first, dict) and first else None


def _sample_due(source: InboundSource, payload: Any) -> bool:
    """Whether this request's payload becomes the sample: when the source was not read by
    ``find_source`` (a replay), when none is kept, when the shape changed, and every SAMPLE_EVERY."""
    stored = source.stored_sample_keys
    if stored is None or (source.requests_accepted or 0) % SAMPLE_EVERY == 0:
        return True
    return stored != _first_keys(payload)


def find_source(token: str) -> tuple[InboundSource, WorkspaceRow] | None:
    """Return the source whose URL token is ``token`` and its workspace (the token is the address)."""
    if not token or len(token) > 64:
        return None
    row = db.session.execute(_find_source_statement(), {"token": token}).unique().first()
    if row is None:
        return None
    source, workspace, table, fresh_orders, subscribers, sample_keys = row
    source.stored_sample_keys = None if sample_keys is None else json.loads(sample_keys)
    source.loaded_table = table  # with its columns: the write takes its lock without reading them again
    if not fresh_orders:
        tables.note_no_fresh_orders(source.table_id)
    if not subscribers:
        webhooks.note_unsubscribed(source.workspace_id, ROW_CREATED)
    return source, workspace


def parse_body(raw: bytes) -> Any:
    """Parse a request body as JSON; refuse anything else with a 400 naming where it broke."""
    try:
        return json.loads(raw)
    except UnicodeDecodeError:
        raise Refused(400, "invalid_json", "The body is not UTF-8 JSON.", {"body": ["not UTF-8"]}) from None
    except ValueError as exc:
        raise Refused(400, "invalid_json", f"The body is not valid JSON: {exc}.", {"body": [str(exc)]}) from None


def receive_payload(workspace: Workspace, source: InboundSource, raw: bytes) -> Received:
    """Map the body to rows and write them in the caller's transaction; raise Refused and write nothing."""
    payload = parse_body(raw)
    loaded = source.loaded_table
    if loaded is not None and loaded.id == source.table_id:
        table = tables.lock_loaded_table(workspace, loaded)
    else:
        table = source_table(workspace, source, lock=True)
    columns = mapped_columns(table, source)
    names = {c.id: c.name for c in table.live_columns}
    try:
        records = records_of(payload, (source.mapping or {}).get("records", ""))
        rows = map_records(records, {cid: compile_path(p) for cid, p in columns.items()}, names)
    except MappingError as exc:
        raise Refused(422, "unmapped", exc.message, exc.fields) from None
    sample = _capped_sample(payload) if _sample_due(source, payload) else None
    key = next((c for c in table.live_columns if c.id == source.upsert_column_id), None)
    try:
        if key is not None and key.id in columns:
            result = _upsert(workspace, table, key, rows)
        else:
            # The source's counters ride in the rows' own statement (one round trip less a request).
            ids = tables.insert_rows(workspace, None, table, rows, also=_count_also(source, len(rows), sample))
            hooks.rows_changed(table, ids)
            db.session.expire(source, [*_COUNTED, *(["sample"] if sample is not None else [])])
            return Received(inserted=len(ids), row_ids=ids)
    except ValidationFailed as exc:
        fields = {k.replace("rows[", "records[", 1): v for k, v in exc.fields.items()}
        raise Refused(
            422, "invalid_value", exc.message.replace("nothing was added", "nothing was written"), fields
        ) from None
    _count(source, result, sample)
    db.session.flush()
    return result


_COUNTED = ("requests_accepted", "rows_inserted", "rows_updated", "last_received_at", "recent")


def _count_also(source: InboundSource, inserted: int, sample: Any) -> tuple[str, dict[str, Any]]:
    """``_count`` for a request that only inserts, as SQL sent with the insert (``insert_rows``' ``also``)."""
    now = utcnow()
    receipt = json.dumps({"at": now.isoformat(), "inserted": inserted, "updated": 0})
    params = {"src_id": source.id, "src_inserted": inserted, "src_at": now, "src_receipt": receipt}
    if sample is not None:
        params["src_sample"] = json.dumps(sample, default=str)
    sql = (
        "UPDATE inbound_sources SET requests_accepted = coalesce(requests_accepted, 0) + 1, "  # noqa: S608 - constant text, bound values
        "rows_inserted = coalesce(rows_inserted, 0) + :src_inserted, last_received_at = :src_at, "
        "recent = jsonb_path_query_array(jsonb_build_array(CAST(:src_receipt AS jsonb)) || coalesce(recent, "
        f"CAST('[]' AS jsonb)), CAST('$[0 to {RECENT_KEPT - 1}]' AS jsonpath))"
        f"{', sample = CAST(:src_sample AS jsonb)' if sample is not None else ''} WHERE id = :src_id"
    )
    return sql, params


@lru_cache(maxsize=2)
def _count_statement(with_sample: bool) -> tuple[sa.Update, tuple[str, ...]]:
    """``_count``'s UPDATE, built once per process (with or without the sample); values are parameters."""
    c = InboundSource.__table__.c
    receipt = sa.cast(sa.bindparam("receipt", type_=sa.String), JSONB)
    recent = func.jsonb_build_array(receipt).op("||")(func.coalesce(c.recent, sa.cast(sa.literal("[]"), JSONB)))
    values: dict[str, Any] = {
        "requests_accepted": func.coalesce(c.requests_accepted, 0) + 1,
        "rows_inserted": func.coalesce(c.rows_inserted, 0) + sa.bindparam("inserted_now", type_=sa.Integer),
        "rows_updated": func.coalesce(c.rows_updated, 0) + sa.bindparam("updated_now", type_=sa.Integer),
        "last_received_at": sa.bindparam("received_at", type_=c.last_received_at.type),
        "recent": func.jsonb_path_query_array(recent, sa.cast(f"$[0 to {RECENT_KEPT - 1}]", JSONPATH), type_=JSONB),
    }
    if with_sample:
        values["sample"] = sa.bindparam("new_sample", type_=c.sample.type)
    statement = (
        sa.update(InboundSource)
        .where(InboundSource.id == sa.bindparam("source_id", type_=sa.BigInteger))
        .values(values)
        .returning(*(c[k] for k in values))
    )
    return statement, tuple(values)


def _count(source: InboundSource, result: Received, sample: Any) -> None:
    """Count the request and keep its receipt (and sample) in one UPDATE computed from the stored values:
    no second read of the source under the lock, and no count lost to a concurrent request."""
    now = utcnow()
    entry = {"at": now.isoformat(), "inserted": result.inserted, "updated": result.updated}
    statement, names = _count_statement(sample is not None)
    params: dict[str, Any] = {
        "source_id": source.id,
        "receipt": json.dumps(entry),
        "inserted_now": result.inserted,
        "updated_now": result.updated,
        "received_at": now,
    }
    if sample is not None:
        params["new_sample"] = sample
    db.session.flush()  # nothing of the source is pending: the values set below are the stored ones
    stored = db.session.execute(statement, params, execution_options={"synchronize_session": False}).one()
    for name, value in zip(names, stored, strict=True):
        set_committed_value(source, name, value)


def _upsert(workspace: Workspace, table: Table, key: Column, rows: list[dict[int, Any]]) -> Received:
    """Insert the rows whose normalised key is new, update those already in the table (under the row lock)."""
    errors: dict[str, list[str]] = {}
    keys: list[str | None] = []
    for index, row in enumerate(rows):
        try:
            value = parse_cell(key.type, key.config or {}, row.get(key.id))
        except CellError as exc:
            errors[f"records[{index}].{key.name}"] = [str(exc)]
            value = None
        keys.append(None if value is None else str(value))
    if errors:
        raise ValidationFailed(f"{len(errors)} key cells could not be read; nothing was written.", fields=errors)
    store = storage.storage_for(table)
    incoming = normalised_sql("k.v", default_kind(key.type))
    # A join, not a first-match subquery: ORDER BY id LIMIT 1 lets the planner walk the primary key
    # hoping for an early match, which scans the whole table for every key that is new.
    found = db.session.execute(
        sa.text(
            f"WITH k AS (SELECT ord, {incoming} AS nk FROM unnest(CAST(:keys AS text[])) WITH ORDINALITY AS k(v, ord)) "  # noqa: S608 - generated names
            f"SELECT k.ord, k.nk, t.id FROM k LEFT JOIN {store.rows.fullname} t "
            f"ON k.nk <> '' AND {_key_sql(table, key, 't')} = k.nk"
        ),
        {"keys": keys},
    ).all()
    first_match: dict[int, tuple[str | None, int | None]] = {}
    for ord_, normalised, row_id in found:
        seen = first_match.get(ord_)
        if seen is None or (row_id is not None and (seen[1] is None or row_id < seen[1])):
            first_match[ord_] = (normalised, row_id)
    # Later records with the same key fold into the first (last value wins per cell), as a second request would.
    pending: dict[str, dict[int, Any]] = {}
    existing: dict[str, int] = {}
    inserts: list[dict[int, Any]] = []
    for ord_ in sorted(first_match):
        normalised, row_id = first_match[ord_]
        row = rows[ord_ - 1]
        if not normalised:
            inserts.append(row)
            continue
        if normalised in pending:
            pending[normalised].update(row)
            continue
        pending[normalised] = dict(row)
        if row_id is not None:
            existing[normalised] = row_id
        else:
            inserts.append(pending[normalised])
    changes: dict[int, dict[int, Any]] = {}
    by_id = {c.id: c for c in table.live_columns}
    for normalised, row_id in existing.items():
        cells: dict[int, Any] = {}
        for cid, raw in pending[normalised].items():
            column = by_id[cid]
            try:
                cells[cid] = parse_cell(column.type, column.config or {}, raw)
            except CellError as exc:
                errors[f"records[{normalised[:40]}].{column.name}"] = [str(exc)]
        changes[row_id] = cells
    if errors:
        count = len(errors)
        raise ValidationFailed(
            f"{count} cell{'s' if count != 1 else ''} could not be saved; nothing was written.", fields=errors
        )
    ids = tables.insert_rows(workspace, None, table, inserts) if inserts else []
    if changes:
        tables.write_cells(workspace, table, changes)
    if ids:
        hooks.rows_changed(table, ids)
    return Received(inserted=len(ids), updated=len(changes), row_ids=[*ids, *changes])


# --- failed payloads ---------------------------------------------------------------------------------


def record_failure(source_id: int, workspace_id: int, raw: bytes, refused: Refused) -> InboundFailure:
    """Keep a refused payload (after the caller rolled back the attempt); the oldest go past the caps."""
    failure = InboundFailure(
        workspace_id=workspace_id,
        source_id=source_id,
        body=raw,
        status=refused.status,
        code=refused.code,
        message=refused.message[:2000],
        fields=dict(list(refused.fields.items())[:50]),
        replays=0,
    )
    db.session.add(failure)
    try:
        sample = _capped_sample(json.loads(raw))
    except ValueError:
        sample = None
    if isinstance(sample, dict | list):
        # A refused payload is the one to map: the editor previews it.
        db.session.execute(
            sa.update(InboundSource).where(InboundSource.id == source_id).values(sample=sample),
            execution_options={"synchronize_session": False},
        )
    db.session.flush()
    _trim_failures(source_id)
    return failure


def _trim_failures(source_id: int) -> None:
    kept = (
        select(
            InboundFailure.id,
            func.sum(func.length(InboundFailure.body)).over(order_by=InboundFailure.id.desc()).label("total"),
        )
        .where(InboundFailure.source_id == source_id)
        .order_by(InboundFailure.id.desc())
        .subquery()
    )
    keep_ids = select(kept.c.id).where(kept.c.total <= FAILURE_BYTES_KEPT).limit(FAILURES_KEPT)
    db.session.execute(
        delete(InboundFailure)
        .where(InboundFailure.source_id == source_id, InboundFailure.id.not_in(keep_ids))
        .execution_options(synchronize_session=False)
    )


def list_failures(workspace: Workspace, source: InboundSource) -> list[InboundFailure]:
    """Return the source's kept failed payloads, newest first."""
    _check(workspace, source)
    return list(
        db.session.scalars(
            select(InboundFailure)
            .where(InboundFailure.workspace_id == workspace.id, InboundFailure.source_id == source.id)
            .order_by(InboundFailure.id.desc())
        )
    )


def get_failure_or_404(workspace: Workspace, source: InboundSource, failure_id: int) -> InboundFailure:
    """Return one kept payload of the source, or raise NotFound."""
    failure = db.session.scalar(
        select(InboundFailure).where(
            InboundFailure.id == failure_id,
            InboundFailure.source_id == source.id,
            InboundFailure.workspace_id == workspace.id,
        )
    )
    if failure is None:
        raise NotFound("That failed payload is no longer kept.")
    return failure


def replay_failure(workspace: Workspace, actor: Actor | None, source: InboundSource, failure_id: int) -> Received:
    """Run a kept payload through the current mapping; on success it is removed from the list.

    Raises Refused when it still cannot be written: the caller rolls back, then calls
    ``note_replay_refused`` so the list shows the new reason.
    """
    failure = get_failure_or_404(workspace, source, failure_id)
    body = bytes(failure.body)
    with db.session.begin_nested():
        result = receive_payload(workspace, source, body)
    db.session.delete(failure)
    db.session.flush()
    return result


def note_replay_refused(workspace: Workspace, source: InboundSource, failure_id: int, refused: Refused) -> None:
    """Record why a replay was refused on the kept payload."""
    failure = get_failure_or_404(workspace, source, failure_id)
    failure.status, failure.code = refused.status, refused.code
    failure.message = refused.message[:2000]
    failure.fields = dict(list(refused.fields.items())[:50])
    failure.replays += 1
    db.session.flush()


def body_text(failure: InboundFailure, limit: int = 4000) -> str:
    """The kept body as text for people (undecodable bytes replaced), cut at ``limit`` characters."""
    text = bytes(failure.body).decode("utf-8", errors="replace")
    return text if len(text) <= limit else text[:limit] + "…"
