"""CRM pushes as users and integrations see them: preview, estimate, start, cancel, progress.

A push sends the rows of a selection, a view or the whole table through the table's saved
mapping (``mapping``), as a run of the row-run engine (``push_executor``). Services take the
workspace and actor explicitly, flush but never commit.

The preview reads the CRM's records by key in batches (HubSpot batch read by ``idProperty``,
Salesforce ``WHERE key IN (…)``, one call per 100 / 200 rows) and compares each mapped field
with what the push would send: records to create (no match), to update (and which fields
differ), unchanged. The first ``PREVIEW_SHOWN`` differences are listed; the counts cover every row.
"""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from flask import current_app
from sqlalchemy.dialects import postgresql as pg

from morket.core.audit import record_audit
from morket.core.errors import Conflict, NotFound, ValidationFailed
from morket.core.jobs import redis_connection
from morket.core.types import Actor, Workspace
from morket.crm import mapping as mappings
from morket.crm import service, tokens
from morket.crm.client import CrmUnavailable
from morket.crm.push_calls import Limiter, RecordResult, Sender, Target, base_url, read, same_value, to_crm
from morket.crm.push_executor import EXECUTOR, KIND, ROW_KEY
from morket.crm.push_models import CrmMapping
from morket.extensions import db
from morket.runs import jobs
from morket.runs.leases import cancel_open_rows
from morket.runs.models import OPEN_ROW_STATUSES, Run, RunRow
from morket.tables import filters, storage
from morket.tables.models import Table, View

SCOPES = ("all", "selected", "view")
MAX_ROWS = 100_000
MAX_SELECTED = 100_000
PREVIEW_MAX_ROWS = 10_000
PREVIEW_SHOWN = 50
PREVIEW_SECONDS = 60.0
CHANGES_KEY = "morket:crm-preview:{}"
CHANGES_SECONDS = 900


@dataclass
class PushEstimate:
    rows: int
    calls: int
    batch: int


@dataclass
class Preview:
    rows: int = 0
    create: int = 0
    update: int = 0
    unchanged: int = 0
    skipped: int = 0  # rows with no key
    calls: int = 0
    differences: list[dict[str, Any]] = field(default_factory=list)
    seconds: float = 0.0
    changed_ids: list[int] = field(default_factory=list)  # the rows to create or update

    def as_dict(self) -> dict[str, Any]:
        return {
            "rows": self.rows,
            "create": self.create,
            "update": self.update,
            "unchanged": self.unchanged,
            "skipped": self.skipped,
            "calls": self.calls,
            "differences": self.differences,
            "shown": len(self.differences),
        }


def _settings() -> dict[str, Any]:
    return current_app.config["MORKET"]


def _mapping_or_409(workspace: Workspace, table: Table, provider: str) -> CrmMapping:
    service.spec_or_404(provider)
    found = mappings.get_mapping(workspace, table, provider)
    if found is None:
        raise Conflict("Map this table's columns to the CRM first (Send to CRM → mapping).")
    if found.record_id_column_id is None or found.record_id_column_id not in {c.id for c in table.live_columns}:
        raise Conflict("The column that receives the CRM record ids was deleted; save the mapping again.")
    return found


def _connection(workspace: Workspace, provider: str):
    connection = service.get_connection(workspace, provider)
    if connection is None:
        raise Conflict(f"{service.spec_or_404(provider).label} is not connected; connect it on the Connections page.")
    return connection


def crm_objects(workspace: Workspace, provider: str) -> list[service.CrmObjectSchema]:
    """The connected CRM's objects and fields; Conflict (409) when it is not connected."""
    _connection(workspace, provider)
    return service.describe_objects(workspace, provider)


def _field_kinds(workspace: Workspace, provider: str, mapping: CrmMapping) -> dict[str, str]:
    objects = service.describe_objects(workspace, provider)
    schema = next((o for o in objects if o.name == mapping.object), None)
    if schema is None:
        raise Conflict(f"The CRM has no object “{mapping.object}” any more; save the mapping again.")
    return {f.name: mappings.field_kind(f) for f in schema.fields}


def _rows_filter(
    workspace: Workspace, table: Table, scope: str, row_ids: Sequence[int] | None, view_id: int | None
) -> Any:
    store = storage.storage_for(table)
    if scope not in SCOPES:
        raise ValidationFailed("Push the selection, a view or the whole table.", fields={"scope": ["unknown"]})
    if scope == "all":
        return sa.true()
    if scope == "selected":
        ids = sorted({int(r) for r in (row_ids or [])})
        if not ids:
            raise ValidationFailed("Select at least one row.", fields={"row_ids": ["required"]})
        if len(ids) > MAX_SELECTED:
            raise ValidationFailed(f"Select at most {MAX_SELECTED:,} rows.", fields={"row_ids": ["too many"]})
        return store.rows.c.id == sa.func.any(sa.cast(sa.literal(ids), pg.ARRAY(sa.BigInteger)))
    view = db.session.get(View, int(view_id or 0)) if view_id else None
    if view is None or view.table_id != table.id or view.workspace_id != workspace.id:
        raise ValidationFailed("Pick a view of this table.", fields={"view_id": ["unknown view"]})
    compiled = filters.compile_filters(view.filters or {}, store) if view.filters else None
    return compiled if compiled is not None else sa.true()


def estimate(
    workspace: Workspace,
    table: Table,
    provider: str,
    *,
    scope: str,
    row_ids: Sequence[int] | None = None,
    view_id: int | None = None,
) -> PushEstimate:
    """How many rows a push covers and how many CRM calls that is (one per 100 / 200 rows)."""
    _mapping_or_409(workspace, table, provider)
    store = storage.storage_for(table)
    where = _rows_filter(workspace, table, scope, row_ids, view_id)
    rows = int(db.session.scalar(sa.select(sa.func.count()).select_from(store.rows).where(where)) or 0)
    batch = 100 if provider == "hubspot" else 200
    return PushEstimate(rows=rows, calls=-(-rows // batch), batch=batch)


def _run_config(workspace: Workspace, mapping: CrmMapping, connection_id: int, kinds: dict[str, str]) -> dict:
    return {
        "provider": mapping.provider,
        "connection_id": connection_id,
        "object": mapping.object,
        "key_field": mapping.key_field,
        "key_kind": kinds.get(mapping.key_field, "text"),
        "key_column_id": mapping.key_column_id,
        "fields": [
            {"column_id": f["column_id"], "field": f["field"], "kind": kinds.get(f["field"], "text")}
            for f in mapping.fields
            if f["field"] in kinds
        ],
    }


def start_push(
    workspace: Workspace,
    actor: Actor | None,
    table: Table,
    provider: str,
    *,
    scope: str,
    row_ids: Sequence[int] | None = None,
    view_id: int | None = None,
) -> Run:
    """Create a push run over the chosen rows and queue its jobs (they start after the commit)."""
    mapping = _mapping_or_409(workspace, table, provider)
    connection = _connection(workspace, provider)
    kinds = _field_kinds(workspace, provider, mapping)
    where = _rows_filter(workspace, table, scope, row_ids, view_id)
    store = storage.storage_for(table)
    run = Run(
        workspace_id=workspace.id,
        table_id=table.id,
        column_id=mapping.record_id_column_id,
        kind=KIND,
        scope=scope if scope != "view" else "all",
        status="queued",
        config=_run_config(workspace, mapping, connection.id, kinds),
        estimate_credits=0,
        created_by_id=actor.id if actor is not None and hasattr(actor, "email") else None,
    )
    db.session.add(run)
    db.session.flush()
    rows = store.rows
    rr = RunRow.__table__
    runs = Run.__table__
    busy = (
        sa.select(rr.c.row_id)
        .join(runs, runs.c.id == rr.c.run_id)
        .where(
            runs.c.kind == KIND,
            runs.c.column_id == run.column_id,
            runs.c.id != run.id,
            rr.c.row_id == rows.c.id,
            rr.c.status.in_(OPEN_ROW_STATUSES),
        )
        .exists()
    )
    source = sa.select(
        sa.literal(workspace.id, sa.BigInteger),
        sa.literal(run.id, sa.BigInteger),
        rows.c.id,
        sa.literal("pending"),
        sa.literal(0),
        sa.literal(0),
        sa.func.clock_timestamp(),
    ).where(where, ~busy)
    db.session.execute(
        rr.insert().from_select(
            ["workspace_id", "run_id", "row_id", "status", "step_index", "attempts", "next_attempt_at"],
            source.limit(MAX_ROWS + 1),
        )
    )
    pending = int(db.session.scalar(sa.select(sa.func.count()).where(rr.c.run_id == run.id)) or 0)
    if pending > MAX_ROWS:
        raise ValidationFailed(f"A push covers at most {MAX_ROWS:,} rows; push a view or a selection.")
    if pending == 0:
        raise ValidationFailed("There are no rows to push (or they are in a push that has not finished).")
    run.total = pending
    key = str(run.column_id)
    new_state = sa.func.jsonb_build_object(key, sa.func.jsonb_build_object("status", "queued", "run_id", run.id))
    db.session.execute(
        sa.update(rows)
        .where(rr.c.run_id == run.id, rr.c.row_id == rows.c.id)
        .values(cell_state=sa.func.coalesce(rows.c.cell_state, sa.cast(sa.literal("{}"), pg.JSONB)).op("||")(new_state))
    )
    jobs.enqueue_jobs(EXECUTOR, run.id)
    record_audit(workspace, actor, "crm.push_started", f"run:{run.id}", table_id=table.id, provider=provider,
                 object=mapping.object, rows=pending)  # fmt: skip
    db.session.flush()
    return run


def get_push_or_404(workspace: Workspace, run_id: int) -> Run:
    run = db.session.scalar(
        sa.select(Run).where(Run.id == int(run_id), Run.workspace_id == workspace.id, Run.kind == KIND)
    )
    if run is None:
        raise NotFound("Push not found.")
    return run


def cancel_push(workspace: Workspace, actor: Actor | None, run: Run) -> Run:
    """Stop a push: rows not sent yet end as cancelled (a call in flight still lands in the CRM)."""
    if run.workspace_id != workspace.id or run.kind != KIND:
        raise NotFound("Push not found.")
    if run.finished:
        raise Conflict(f"This push is already {run.status}.")
    cancelled = cancel_open_rows(run)
    record_audit(workspace, actor, "crm.push_cancelled", f"run:{run.id}", rows=cancelled)
    db.session.flush()
    db.session.refresh(run)
    return run


def progress(run: Run) -> dict[str, Any]:
    """The numbers a progress bar shows, with how many records were created and updated."""
    rr = RunRow.__table__
    created, updated = db.session.execute(
        sa.select(
            sa.func.count().filter(rr.c.provider.like("%:created")),
            sa.func.count().filter(rr.c.provider.like("%:updated")),
        ).where(rr.c.run_id == run.id, rr.c.status == "done")
    ).one()
    total, done = int(run.total or 0), int(run.done or 0)
    config = run.config or {}
    return {
        "id": run.id,
        "provider": config.get("provider"),
        "object": config.get("object"),
        "status": run.status,
        "finished": run.finished,
        "pause_reason": run.pause_reason,
        "total": total,
        "done": done,
        "remaining": max(total - done, 0),
        "succeeded": int(run.succeeded or 0),
        "created": int(created or 0),
        "updated": int(updated or 0),
        "failed": int(run.failed or 0),
        "cancelled": int(run.cancelled or 0),
        "record_id_column_id": run.column_id,
        "percent": 100 if total == 0 else min(100, round(done * 100 / total)),
        "started_at": run.started_at.isoformat() if run.started_at else None,
        "finished_at": run.finished_at.isoformat() if run.finished_at else None,
    }


# --- the preview -------------------------------------------------------------------------------------


def preview(
    workspace: Workspace,
    table: Table,
    provider: str,
    *,
    scope: str,
    row_ids: Sequence[int] | None = None,
    view_id: int | None = None,
) -> Preview:
    """What a push of these rows would do in the CRM, read back by key (no write)."""
    started = time.monotonic()
    mapping = _mapping_or_409(workspace, table, provider)
    connection = _connection(workspace, provider)
    kinds = _field_kinds(workspace, provider, mapping)
    config = _run_config(workspace, mapping, connection.id, kinds)
    where = _rows_filter(workspace, table, scope, row_ids, view_id)
    store = storage.storage_for(table)
    fields = [(f["column_id"], f["field"], f["kind"]) for f in config["fields"] if f["column_id"] in store.columns]
    key_col = store.columns.get(mapping.key_column_id) if mapping.key_column_id else None
    cols = [store.columns[cid] for cid, _, _ in fields] + ([key_col] if key_col is not None else [])
    found = db.session.execute(
        sa.select(store.rows.c.id, *cols).where(where).order_by(store.rows.c.id).limit(PREVIEW_MAX_ROWS + 1)
    ).all()
    if len(found) > PREVIEW_MAX_ROWS:
        raise ValidationFailed(f"A preview reads at most {PREVIEW_MAX_ROWS:,} rows; preview a view or a selection.")
    key_kind = config["key_kind"]
    labels = {c.id: c.name for c in table.live_columns}
    records: list[tuple[int, str, dict[str, Any]]] = []
    result = Preview(rows=len(found))
    seen: set[str] = set()
    for row in found:
        key = ROW_KEY.format(table.id, row[0]) if key_col is None else to_crm(row[-1], key_kind, provider)
        if key is None:
            result.skipped += 1
            continue
        norm = str(key).lower() if key_kind == "email" else str(key)
        if norm in seen:
            result.skipped += 1
            continue
        seen.add(norm)
        values = {name: to_crm(row[i + 1], kind, provider) for i, (_, name, kind) in enumerate(fields)}
        records.append((row[0], norm, values))
    settings = _settings()
    target = Target(provider, connection.id, mapping.object, mapping.key_field,
                    base_url(provider, settings, connection.instance_url),
                    {**{f: k for _, f, k in fields}, mapping.key_field: key_kind})  # fmt: skip
    token = tokens.token_for_use(connection.id, settings)
    size = target.batch_size
    import httpx

    with httpx.Client(timeout=30.0) as http:
        sender = Sender(http, target, token.access_token, Limiter(redis_connection(), target),
                        deadline=time.monotonic() + PREVIEW_SECONDS)  # fmt: skip
        for start in range(0, len(records), size):
            chunk = records[start : start + size]
            answer = read(sender, [k for _, k, _ in chunk], [f for _, f, _ in fields])
            if isinstance(answer, RecordResult) and answer.status == "session":
                token = tokens.refresh_access(connection.id, token.version, settings)
                sender.access_token = token.access_token
                answer = read(sender, [k for _, k, _ in chunk], [f for _, f, _ in fields])
            if isinstance(answer, RecordResult):
                tokens.record_error(connection.id, answer.message)
                raise CrmUnavailable(f"Reading the CRM's records failed: {answer.message}")
            for row_id, key, values in chunk:
                theirs = answer.get(key)
                if theirs is None:
                    result.create += 1
                    result.changed_ids.append(row_id)
                    continue
                diffs = [
                    {"field": name, "column": labels.get(cid, name), "crm": theirs.get(name), "morket": values[name]}
                    for cid, name, kind in fields
                    if values[name] is not None and not same_value(values[name], theirs.get(name), kind)
                ]
                if not diffs:
                    result.unchanged += 1
                    continue
                result.update += 1
                result.changed_ids.append(row_id)
                if len(result.differences) < PREVIEW_SHOWN:
                    result.differences.append({"row_id": row_id, "key": key, "record_id": theirs.get("id"),
                                               "fields": diffs})  # fmt: skip
        result.calls = sender.calls
    result.seconds = time.monotonic() - started
    return result


def remember_changes(workspace: Workspace, actor: Actor, table: Table, provider: str, found: Preview) -> str:
    """Keep the rows a preview found to create or update, for "Send only the changes"; return its token."""
    token = secrets.token_urlsafe(16)
    value = {"workspace_id": workspace.id, "table_id": table.id, "provider": provider,
             "user_id": getattr(actor, "id", None), "row_ids": found.changed_ids}  # fmt: skip
    redis_connection().set(CHANGES_KEY.format(token), json.dumps(value), ex=CHANGES_SECONDS)
    return token


def changed_rows(workspace: Workspace, actor: Actor, table: Table, provider: str, token: str) -> list[int]:
    """The rows a preview of this table by this user found to change; ValidationFailed once it expired."""
    raw = redis_connection().get(CHANGES_KEY.format(token)) if token else None
    found = json.loads(raw) if raw else None
    mine = (workspace.id, table.id, provider, getattr(actor, "id", None))
    if found is None or (found["workspace_id"], found["table_id"], found["provider"], found["user_id"]) != mine:
        raise ValidationFailed("That preview expired (after 15 minutes); preview the changes again.",
                               fields={"changes": ["expired"]})  # fmt: skip
    if not found["row_ids"]:
        raise ValidationFailed("The preview found nothing to change; nothing was sent.", fields={"changes": ["none"]})
    return [int(r) for r in found["row_ids"]]
