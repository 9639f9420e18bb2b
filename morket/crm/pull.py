"""CRM pulls: a HubSpot list or object, or a Salesforce query, read into a new or existing table.

A **pull source** says what a table pulls (validated against ``describe_objects`` and, for a
HubSpot list, the list itself, before anything is created: a bad field or list creates no
table), which column each CRM field fills, and the upsert key (the CRM record id column unless a
mapped column was chosen; matched normalised, as dedupe keys are). A **pull** is one run of it,
an RQ job (``run_pull``): page by page, each page upserted and committed with the pull's counts
and cursor, so a killed job is retried from its cursor, and since every write is an upsert by the
key a page read twice writes no duplicate. A running job holds the pull's lease in Redis
(``morket:crm-pull:alive:<id>``, refreshed by a heartbeat); a worker killed outright lets it
lapse, and ``reconcile_pulls`` (every 15 s in the scheduler) queues the pull again, to go on from
its cursor. A second job of the same pull finds the lease held and does nothing. The cancel flag
is read between pages. A finished pull moves the source's high-water mark to the newest
last-modified time it saw; the next pull asks only for records modified after it, unless ``full``.
"""

from __future__ import annotations

import logging
import threading
import uuid
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from flask import current_app
from redis.exceptions import RedisError
from sqlalchemy import select
from sqlalchemy.dialects import postgresql as pg

from morket.core.audit import record_audit
from morket.core.db import utcnow
from morket.core.errors import Conflict, Forbidden, MorketError, NotFound, ValidationFailed
from morket.core.jobs import QUEUE_IO, enqueue_after_commit, redis_connection
from morket.core.normalise import normalised_sql
from morket.core.roles import can
from morket.crm import pull_read, service
from morket.crm.client import CrmClient
from morket.crm.providers import HUBSPOT, SALESFORCE, SPECS
from morket.crm.pull_models import CrmPull, CrmPullSource
from morket.extensions import db
from morket.tables import hooks, storage
from morket.tables import service as tables
from morket.tables.cells import CellError, parse_cell
from morket.tables.models import Column, Table

if TYPE_CHECKING:
    from morket.core.types import Actor, Workspace

log = logging.getLogger(__name__)

LIVE = ("queued", "running")
ON_DELETE = ("keep", "remove")
REMOVE_BATCH = 5_000
ALIVE_KEY = "morket:crm-pull:alive:{}"
ALIVE_SECONDS = 30
REQUEUED_KEY = "morket:crm-pull:requeued:{}"
QUEUED_GRACE = timedelta(minutes=10)  # a queued pull whose job is lost is queued again after this
PREVIEW_ROWS = 10
MAX_FIELDS = 60
MAX_WHERE = 5
_TYPES = {
    # HubSpot property types and Salesforce field types -> Morket column types
    "number": "number", "int": "number", "double": "number", "currency": "number", "percent": "number",
    "datetime": "datetime", "date": "date", "bool": "checkbox", "boolean": "checkbox",
    "email": "email", "url": "url", "phone": "phone", "phonenumber": "phone",
}  # fmt: skip
_BY_NAME = {"email": "email", "website": "url", "domain": "domain", "phone": "phone"}
_KIND_OF = {"email": "email", "domain": "domain", "url": "url", "phone": "phone"}


def _settings() -> dict[str, Any]:
    return current_app.config["MORKET"]


def column_type(provider: str, field: service.CrmField) -> str:
    """The Morket column type for a CRM field: by its type, then by its well-known name, else text."""
    found = _TYPES.get(field.type)
    if found is None and field.name.lower() in _BY_NAME:
        found = _BY_NAME[field.name.lower()]
    return found or "text"


def _connection(workspace: Workspace, provider: str) -> Any:
    spec = service.spec_or_404(provider)
    connection = service.get_connection(workspace, provider)
    if connection is None:
        raise NotFound(f"{spec.label} is not connected to this workspace.")
    return connection


def _object_fields(workspace: Workspace, provider: str, obj: str) -> dict[str, service.CrmField]:
    for schema in service.describe_objects(workspace, provider):
        if schema.name == obj:
            return {f.name: f for f in schema.fields}
    names = ", ".join(o.name for o in SPECS[provider].objects)
    raise ValidationFailed(f"Choose one of: {names}.", fields={"object": ["unknown object"]})


def clean_spec(workspace: Workspace, provider: str, kind: Any, raw: Mapping[str, Any]) -> tuple[dict, dict, str]:
    """Check a source's parts against the CRM; return (spec, described fields, a label). Nothing is written."""
    if provider not in SPECS:
        raise NotFound("No such CRM.")
    if kind not in ({HUBSPOT: ("list", "object"), SALESFORCE: ("query",)}[provider]):
        raise ValidationFailed("Choose a HubSpot list or object, or a Salesforce query.", fields={"kind": ["unknown"]})
    connection = _connection(workspace, provider)
    spec: dict[str, Any] = {}
    label = ""
    if kind == "list":
        with CrmClient(connection.id, _settings()) as client:
            info = pull_read.hubspot_list_info(client, str(raw.get("list_id") or "").strip())
        spec["list_id"], spec["object"] = str(raw["list_id"]).strip(), info["object"]
        label = f"HubSpot list “{info['name']}”"
    else:
        spec["object"] = str(raw.get("object") or "")
        label = f"{SPECS[provider].label} {spec['object']}"
    described = _object_fields(workspace, provider, spec["object"])
    fields = raw.get("fields") or []
    if isinstance(fields, str):
        fields = [f.strip() for f in fields.split(",")]
    fields = [f for f in dict.fromkeys(str(f) for f in fields if f) if f not in ("Id", "hs_object_id")]
    if not fields:
        fields = [f.name for f in list(described.values()) if f.type not in ("id",)][:12]
        fields = [f for f in fields if f not in ("Id", "hs_object_id")]
    unknown = [f for f in fields if f not in described]
    if unknown:
        raise ValidationFailed(
            f"{spec['object']} has no field “{unknown[0][:60]}”.", fields={"fields": [u[:60] for u in unknown[:5]]}
        )
    if len(fields) > MAX_FIELDS:
        raise ValidationFailed(f"Pull at most {MAX_FIELDS} fields.", fields={"fields": ["too many"]})
    spec["fields"] = fields
    where = raw.get("where") or []
    if where and provider != SALESFORCE:
        raise ValidationFailed("Conditions are for Salesforce queries.", fields={"where": ["not here"]})
    if not isinstance(where, list) or len(where) > MAX_WHERE:
        raise ValidationFailed(f"At most {MAX_WHERE} conditions.", fields={"where": ["too many"]})
    clean_where = []
    for item in where:
        if not isinstance(item, (list, tuple)) or len(item) != 3:
            raise ValidationFailed("Each condition is [field, operator, value].", fields={"where": ["shape"]})
        clean_where.append([str(item[0]), str(item[1]), str(item[2])[:200]])
    spec["where"] = clean_where
    if provider == SALESFORCE:
        pull_read.build_soql(spec, {n: f.type for n, f in described.items()}, None)  # raises on a bad part
    return spec, described, label


def from_soql(workspace: Workspace, actor: Actor | None, provider: str, raw: Mapping[str, Any]) -> Mapping[str, Any]:
    """A raw SOQL query (owners and admins only) read into the source's parts; other sources unchanged."""
    soql = str(raw.get("soql") or "").strip()
    if not soql:
        return raw
    if provider != SALESFORCE:
        raise ValidationFailed("A SOQL query is for Salesforce.", fields={"soql": ["salesforce only"]})
    if actor is None or not can(_role(workspace, actor), "crm.manage"):
        raise Forbidden("Only owners and admins can pull with a SOQL query; members build the query from parts.")
    if raw.get("fields") or raw.get("where"):
        raise ValidationFailed("Write the query or pick its parts, not both.", fields={"soql": ["both"]})
    return {**raw, **pull_read.parse_soql(soql)}


def _role(workspace: Workspace, actor: Actor) -> str | None:
    from morket.workspaces.service import get_membership

    membership = get_membership(workspace, actor)
    return membership.role if membership is not None else None


def preview(
    workspace: Workspace, provider: str, kind: Any, raw: Mapping[str, Any], actor: Actor | None = None
) -> tuple[dict, list[dict]]:
    """The checked spec and the source's first ``PREVIEW_ROWS`` records (field → value)."""
    raw = from_soql(workspace, actor, provider, raw)
    spec, described, label = clean_spec(workspace, provider, kind, raw)
    connection = _connection(workspace, provider)
    rows: list[dict[str, Any]] = []
    with CrmClient(connection.id, _settings()) as client:
        if provider == SALESFORCE:
            soql = pull_read.build_soql(spec, {n: f.type for n, f in described.items()}, None)
            pages = pull_read.read_salesforce(client, soql, spec["fields"], limit=PREVIEW_ROWS)
        else:
            pages = pull_read.read_hubspot(client, spec, None, {})
        for page in pages:
            rows.extend({"id": r.crm_id, **r.values} for r in page.records)
            if len(rows) >= PREVIEW_ROWS:
                break
    return spec | {"label": label}, rows[:PREVIEW_ROWS]


def id_column_name(provider: str) -> str:
    return f"{SPECS[provider].label} ID"


def create_source(
    workspace: Workspace,
    actor: Actor | None,
    provider: str,
    kind: Any,
    raw: Mapping[str, Any],
    *,
    table: Table | None = None,
    table_name: str | None = None,
    key_column: str | None = None,
    on_delete: str = "keep",
) -> CrmPullSource:
    """Check the parts with the CRM, then create the table (or add missing columns) and the source.

    Into an existing table, each field fills the column of the same label or name (added when
    missing, typed from the CRM's field type). All in the caller's transaction: a refusal leaves
    nothing behind.
    """
    raw = from_soql(workspace, actor, provider, raw)
    if on_delete not in ON_DELETE:
        raise ValidationFailed("When a record is deleted in the CRM, keep the row or remove it.",
                               fields={"on_delete": ["keep or remove"]})  # fmt: skip
    spec, described, label = clean_spec(workspace, provider, kind, raw)
    if table is None:
        name = (table_name or "").strip() or label.replace("“", "").replace("”", "")
        table = tables.create_table(workspace, actor, name[:120])
    else:
        tables.check_owned(workspace, table)
    by_name = {c.name.casefold(): c for c in table.live_columns}
    id_col = by_name.get(id_column_name(provider).casefold()) or tables.add_column(
        workspace, actor, table, id_column_name(provider), "text"
    )
    columns: dict[str, int] = {}
    for name in spec["fields"]:
        field = described[name]
        existing = by_name.get(field.label.casefold()) or by_name.get(field.name.casefold())
        if existing is None or existing.id == id_col.id or existing.id in columns.values():
            column_name = field.label if field.label.casefold() not in by_name else field.name
            existing = tables.add_column(workspace, actor, table, column_name, column_type(provider, field))
            by_name[existing.name.casefold()] = existing
        columns[name] = existing.id
    key = id_col
    if key_column and key_column.strip() in columns:  # a field of the pull: the column it fills
        key_column = str(columns[key_column.strip()])
    if key_column:
        key_column = key_column.strip()
        key = next((c for c in table.live_columns if str(c.id) == key_column or c.name == key_column), None)
        if key is None or (key.id != id_col.id and key.id not in columns.values()):
            raise ValidationFailed(
                "The upsert key must be the record id column or a column this pull fills.", fields={"key": ["pick"]}
            )
    source = CrmPullSource(
        workspace_id=workspace.id, table_id=table.id, provider=provider, kind=kind, label=label[:200], spec=spec,
        columns={"id": id_col.id, "fields": columns}, key_column_id=key.id, created_by_id=getattr(actor, "id", None),
        on_delete=on_delete,
    )  # fmt: skip
    db.session.add(source)
    db.session.flush()
    _index_key(table, key)
    record_audit(workspace, actor, "crm.pull_source.create", f"{provider}:{source.id}", table_id=table.id)
    return source


def _key_sql(column: Column, alias: str) -> str:
    return normalised_sql(f"{alias}.{column.storage_name}", _KIND_OF.get(column.type, "text"))


def _index_key(table: Table, column: Column) -> None:
    store = storage.storage_for(table)
    if not isinstance(store.columns[column.id].type, sa.Text):
        return
    name = f"ix_{table.storage_name}_pull_{column.id}"
    db.session.execute(
        sa.text(
            f'CREATE INDEX IF NOT EXISTS "{name}" ON {store.rows.fullname} '
            f"(({normalised_sql(column.storage_name, _KIND_OF.get(column.type, 'text'))}))"
        )
    )


def list_sources(workspace: Workspace, table: Table | None = None) -> list[CrmPullSource]:
    query = select(CrmPullSource).where(CrmPullSource.workspace_id == workspace.id)
    if table is not None:
        query = query.where(CrmPullSource.table_id == table.id)
    return list(db.session.scalars(query.order_by(CrmPullSource.id.desc())))


def get_source_or_404(workspace: Workspace, source_id: int) -> CrmPullSource:
    source = db.session.get(CrmPullSource, source_id)
    if source is None or source.workspace_id != workspace.id:
        raise NotFound("No such pull source.")
    return source


def get_pull_or_404(workspace: Workspace, pull_id: int) -> CrmPull:
    pull = db.session.get(CrmPull, pull_id)
    if pull is None or pull.workspace_id != workspace.id:
        raise NotFound("No such pull.")
    return pull


def latest_pull(source: CrmPullSource) -> CrmPull | None:
    return db.session.scalars(select(CrmPull).where(CrmPull.source_id == source.id).order_by(CrmPull.id.desc())).first()


def start_pull(workspace: Workspace, actor: Actor | None, source: CrmPullSource, *, full: bool = False) -> CrmPull:
    """Queue a run of ``source`` (incremental from its high-water mark unless ``full``); Conflict when one runs."""
    if source.workspace_id != workspace.id:
        raise NotFound("No such pull source.")
    if service.get_connection(workspace, source.provider) is None:
        raise Conflict(f"{SPECS[source.provider].label} is not connected; connect it on the Connections page first.")
    locked = db.session.scalar(select(CrmPullSource).where(CrmPullSource.id == source.id).with_for_update())
    if locked is None:
        raise NotFound("No such pull source.")
    running = db.session.scalar(select(CrmPull.id).where(CrmPull.source_id == source.id, CrmPull.status.in_(LIVE)))
    if running is not None:
        raise Conflict("This source is being pulled right now; wait for it or cancel it.")
    since = None if full else source.high_water
    pull = CrmPull(workspace_id=workspace.id, source_id=source.id, status="queued", full=since is None, since=since,
                   cursor={}, created_by_id=getattr(actor, "id", None))  # fmt: skip
    db.session.add(pull)
    db.session.flush()
    enqueue_after_commit(run_pull, pull.id, queue=QUEUE_IO, job_id=f"crm-pull-{pull.id}")
    return pull


def cancel_pull(workspace: Workspace, pull: CrmPull) -> CrmPull:
    """Ask a live pull to stop after its current page (a queued one stops at once)."""
    if pull.workspace_id != workspace.id:
        raise NotFound("No such pull.")
    if pull.status == "queued":
        pull.status, pull.finished_at = "cancelled", utcnow()
    elif pull.status == "running":
        pull.cancel_requested = True
    db.session.flush()
    return pull


# --- the job -------------------------------------------------------------------------------------


def _later(a: str | None, b: str | None) -> str | None:
    def parse(v: str) -> datetime:
        return datetime.fromisoformat(v.replace("Z", "+00:00").replace("+0000", "+00:00"))

    if not a or not b:
        return a or b
    return a if parse(a) >= parse(b) else b


@contextmanager
def _lease(pull_id: int) -> Iterator[bool]:
    """Hold the pull's lease while the block runs (a heartbeat keeps it); yield False when another job holds it."""
    redis = redis_connection()
    key, token = ALIVE_KEY.format(pull_id), uuid.uuid4().hex
    if not redis.set(key, token, nx=True, ex=ALIVE_SECONDS):
        yield False
        return
    stop = threading.Event()

    def beat() -> None:
        while not stop.wait(ALIVE_SECONDS / 3):
            try:
                redis.set(key, token, xx=True, ex=ALIVE_SECONDS)
            except RedisError as exc:  # a missed beat only lets the reconciler queue a live pull again
                log.warning("crm pull %s: lease not refreshed (%s)", pull_id, type(exc).__name__)

    thread = threading.Thread(target=beat, name=f"crm-pull-{pull_id}-lease", daemon=True)
    thread.start()
    try:
        yield True
    finally:
        stop.set()
        thread.join(timeout=5)
        if redis.get(key) in (token, token.encode()):
            redis.delete(key)


def reconcile_pulls() -> dict[str, int]:
    """Periodic: queue again every running pull whose job died (its lease lapsed), to go on from its cursor."""
    redis = redis_connection()
    stale_queued = utcnow() - QUEUED_GRACE
    candidates = db.session.execute(
        select(CrmPull.id, CrmPull.status).where(
            sa.or_(CrmPull.status == "running", sa.and_(CrmPull.status == "queued", CrmPull.created_at < stale_queued))
        )
    ).all()
    requeued = 0
    for pull_id, _status in candidates:
        if redis.exists(ALIVE_KEY.format(pull_id)):
            continue
        if not redis.set(REQUEUED_KEY.format(pull_id), "1", nx=True, ex=ALIVE_SECONDS * 2):
            continue  # queued again a moment ago; its job has not started yet
        enqueue_after_commit(run_pull, pull_id, queue=QUEUE_IO, job_id=f"crm-pull-{pull_id}-{uuid.uuid4().hex[:8]}")
        requeued += 1
    db.session.commit()
    return {"requeued": requeued}


def run_pull(pull_id: int) -> None:
    """The RQ job: read the source page by page and upsert each page, committing progress as it goes."""
    with _lease(pull_id) as held:
        if held:
            _run_pull(pull_id)


def _run_pull(pull_id: int) -> None:
    from morket.workspaces.models import Workspace as WorkspaceModel

    pull = db.session.get(CrmPull, pull_id)
    if pull is None or pull.status not in LIVE:
        return
    source = db.session.get(CrmPullSource, pull.source_id)
    workspace = db.session.get(WorkspaceModel, pull.workspace_id)
    pull.status, pull.started_at = "running", pull.started_at or utcnow()
    db.session.commit()
    try:
        connection = _connection(workspace, source.provider)
        types = {}
        if source.provider == SALESFORCE:
            types = {n: f.type for n, f in _object_fields(workspace, source.provider, source.spec["object"]).items()}
        with CrmClient(connection.id, _settings()) as client:
            for page in pull_read.read(client, source.provider, source.spec, types, pull.since, pull.cursor or {}):
                db.session.refresh(pull)
                if pull.cancel_requested:
                    _finish(pull, source, "cancelled", None)
                    return
                inserted, updated = write_page(workspace, source, page.records)
                pull.rows_read += len(page.records)
                pull.rows_written += inserted + updated
                pull.inserted += inserted
                pull.updated += updated
                for stamp in [*(r.modified for r in page.records), page.joined]:
                    pull.seen_high = _later(pull.seen_high, stamp)
                if page.cursor:
                    pull.cursor = dict(page.cursor)
                db.session.commit()
            if source.on_delete == "remove":
                pull.removed += remove_gone(workspace, source, client, pull.since)
                db.session.commit()
    except MorketError as exc:
        db.session.rollback()
        pull = db.session.get(CrmPull, pull_id)
        _finish(pull, db.session.get(CrmPullSource, pull.source_id), "failed", exc.message)
        return
    _finish(pull, source, "done", None)


def _finish(pull: CrmPull, source: CrmPullSource, status: str, error: str | None) -> None:
    pull.status, pull.error, pull.finished_at = status, error, utcnow()
    source.last_run_at, source.last_status = pull.finished_at, status
    if status == "done":
        source.high_water = _later(source.high_water, pull.seen_high)
    db.session.commit()


def remove_gone(workspace: Workspace, source: CrmPullSource, client: CrmClient, since: str | None) -> int:
    """Delete the rows whose record is gone from the source; return how many.

    HubSpot lists: rows whose record is no longer a member (it left the list or was archived).
    HubSpot objects: rows of records archived (since the last pull's mark, or ever on a full pull).
    Salesforce: rows of records deleted since the last pull (``getDeleted``); when that pull is older
    than ``getDeleted``'s 30 days, or there was none, every row's record id is compared with the
    object's ids instead. Rows with no record id (typed in by hand) are never removed.
    """
    table = tables.get_table_or_404(workspace, source.table_id, lock="update")
    id_col = next((c for c in table.live_columns if c.id == source.columns.get("id")), None)
    if id_col is None:
        raise ValidationFailed("The pull's record id column was deleted; set the pull up again.")
    store = storage.storage_for(table)
    column = store.columns[id_col.id]
    has_id = sa.and_(column.isnot(None), column != "")
    if source.provider == HUBSPOT and source.spec.get("list_id"):
        members = sorted(pull_read.hubspot_list_members(client, str(source.spec["list_id"])))
        where = sa.and_(has_id, sa.not_(column == sa.func.any(sa.cast(members, pg.ARRAY(sa.Text)))))
    elif source.provider != HUBSPOT and not pull_read.salesforce_deleted_covers(
        checked := _deletions_checked(source, since)
    ):
        present = sa.cast(sorted(pull_read.salesforce_ids(client, source.spec["object"])), pg.ARRAY(sa.Text))
        listed = sa.func.unnest(present).table_valued("id").render_derived(name="p")
        where = sa.and_(has_id, ~sa.exists().where(listed.c.id == column))
    else:
        obj = source.spec["object"]
        gone = (
            pull_read.hubspot_archived(client, obj, since)
            if source.provider == HUBSPOT
            else pull_read.salesforce_deleted(client, obj, checked)
        )
        if not gone:
            return 0
        where = sa.and_(has_id, column == sa.func.any(sa.cast(sorted(gone), pg.ARRAY(sa.Text))))
    ids = list(db.session.scalars(sa.select(store.rows.c.id).where(where)))
    removed = 0
    for start in range(0, len(ids), REMOVE_BATCH):
        removed += tables.delete_rows(workspace, None, table, ids[start : start + REMOVE_BATCH])
    return removed


def _deletions_checked(source: CrmPullSource, since: str | None) -> datetime | None:
    """When deletions were last looked for: the last pull's end, if it was incremental and succeeded
    (None for a first or full pull, or after a failed one: every key is compared then)."""
    if not since or source.last_status != "done" or source.last_run_at is None:
        return None
    return source.last_run_at


def write_page(workspace: Workspace, source: CrmPullSource, records: Sequence[pull_read.Record]) -> tuple[int, int]:
    """Upsert one page's records into the source's table by its key; return (inserted, updated)."""
    if not records:
        return 0, 0
    table = tables.get_table_or_404(workspace, source.table_id, lock="update")
    live = {c.id: c for c in table.live_columns}
    id_col = live.get(source.columns.get("id"))
    wanted = {name: live.get(cid) for name, cid in (source.columns.get("fields") or {}).items()}
    key = live.get(source.key_column_id)
    if id_col is None or key is None:
        raise ValidationFailed("The pull's record id or key column was deleted; set the pull up again.")
    rows: list[dict[int, Any]] = []
    for record in records:
        row: dict[int, Any] = {id_col.id: record.crm_id}
        for name, column in wanted.items():
            if column is None or column.type in ("formula", "lookup", "enrichment", "ai"):
                continue
            value = record.values.get(name)
            try:
                parse_cell(column.type, column.config or {}, value)
            except CellError:
                value = None  # a value the column cannot hold is left empty rather than failing the page
            row[column.id] = value
        rows.append(row)
    # Key values of this page, normalised like dedupe keys; a page repeating a key keeps its last record.
    by_key: dict[str, dict[int, Any]] = {}
    blank: list[dict[int, Any]] = []
    for row in rows:
        try:
            value = parse_cell(key.type, key.config or {}, row.get(key.id))
        except CellError:
            value = None
        if value is None or str(value).strip() == "":
            blank.append(row)
        else:
            by_key[str(value)] = row
    store = storage.storage_for(table)
    incoming = normalised_sql("k.v", _KIND_OF.get(key.type, "text"))
    found = db.session.execute(
        sa.text(
            f"WITH k AS (SELECT v, {incoming} AS nk FROM unnest(CAST(:keys AS text[])) AS k(v)) "  # noqa: S608 - generated names
            f"SELECT k.v, min(t.id) FROM k JOIN {store.rows.fullname} t "
            f"ON k.nk <> '' AND {_key_sql(key, 't')} = k.nk GROUP BY k.v"
        ),
        {"keys": list(by_key)},
    ).all()
    existing = dict(found)
    inserts = [row for value, row in by_key.items() if value not in existing] + blank
    changes = {
        existing[value]: {cid: parse_cell(live[cid].type, live[cid].config or {}, raw) for cid, raw in row.items()}
        for value, row in by_key.items()
        if value in existing
    }
    ids = tables.insert_rows(workspace, None, table, inserts) if inserts else []
    if changes:
        tables.write_cells(workspace, table, changes)
    if ids:
        hooks.rows_changed(table, ids)
    return len(ids), len(changes)
