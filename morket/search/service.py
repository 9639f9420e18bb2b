"""Search across a workspace: one service over an engine (PostgreSQL, or OpenSearch when configured).

The service checks the query and who asks, asks the engine for scored cells of the caller's
workspace (the workspace id comes from the caller's membership, never from input), keeps the
best cell per row, ranks (score, then table and row for a stable order), counts facets (table,
column, enrichment state, provider), pages, and marks where the query matched for highlighting.
"""

from __future__ import annotations

import logging
import re
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field

import sqlalchemy as sa
from flask import current_app, has_app_context
from redis.exceptions import RedisError
from sqlalchemy import event
from sqlalchemy.orm import Session

from morket.core.errors import Forbidden, ValidationFailed
from morket.core.jobs import enqueue_after_commit, enqueue_now, redis_connection
from morket.core.roles import can
from morket.core.types import Workspace
from morket.extensions import db
from morket.search import indexing
from morket.search.engine import QUERY_MAX, Engine, Filters, Hit, ParsedQuery, parse_query
from morket.search.opensearch import OpenSearchEngine
from morket.search.postgres import PostgresEngine
from morket.tables.cells import CellError, check_characters
from morket.tables.hooks import CELL_STATE_LABELS

log = logging.getLogger("morket.search")

CAP = 200  # candidate cells per way of matching; more are counted as "more than"
PER_PAGE_MAX = 100
TYPEAHEAD_TABLES = 5
TYPEAHEAD_PER_TABLE = 3

_engine: Engine = PostgresEngine()
_opensearch: dict[tuple[str, str], OpenSearchEngine] = {}


def engine() -> Engine:
    """The engine in use: OpenSearch when ``MORKET_OPENSEARCH_URL`` is set, PostgreSQL otherwise."""
    settings = current_app.config["MORKET"] if has_app_context() else {}
    url = settings.get("OPENSEARCH_URL") or ""
    if not url:
        return _engine
    key = (url, settings.get("ENV") or "development")
    found = _opensearch.get(key)
    if found is None:
        found = _opensearch[key] = OpenSearchEngine(url, key[1])
    return found


def _mirror_indexed(table: indexing.IndexedTable, row_ids: list[int] | None) -> None:
    """Rows (or a whole table) rewritten in ``search_documents`` reach OpenSearch in the same sync."""
    eng = engine()
    if isinstance(eng, OpenSearchEngine):
        eng.push(table.workspace_id, table.id, row_ids)


def _mirror_dropped(tables: list[tuple[int, int]]) -> None:
    eng = engine()
    if isinstance(eng, OpenSearchEngine):
        for workspace_id, table_id in tables:
            eng.drop_table(workspace_id, table_id)


indexing.INDEXED.append(_mirror_indexed)
indexing.DROPPED.append(_mirror_dropped)


@dataclass(frozen=True)
class ResultRow:
    table_id: int
    table_name: str
    row_id: int
    column_id: int
    column_name: str
    value: str
    score: float
    states: tuple[str, ...]
    providers: tuple[str, ...]
    segments: tuple[tuple[str, bool], ...]


@dataclass(frozen=True)
class Facet:
    key: str
    label: str
    count: int


@dataclass
class Results:
    query: str
    rows: list[ResultRow]
    total: int
    capped: bool
    page: int
    per_page: int
    facets: dict[str, list[Facet]] = field(default_factory=dict)


def check_query(raw: object) -> ParsedQuery:
    """Return the parsed query, or raise ValidationFailed (422) with a message a person can act on."""
    if not isinstance(raw, str) or not raw.strip():
        raise ValidationFailed("Type something to search for.", fields={"q": ["required"]})
    if len(raw) > QUERY_MAX:
        raise ValidationFailed(
            f"Search for at most {QUERY_MAX} characters.", fields={"q": [f"at most {QUERY_MAX} characters"]}
        )
    try:
        check_characters(raw)
    except CellError as exc:
        raise ValidationFailed(f"Search: {exc}", fields={"q": [str(exc)]}) from exc
    return parse_query(raw)


def _require(role: str) -> None:
    if not can(role, "tables.view"):
        raise Forbidden("You cannot view this workspace's tables.")


def _names(workspace_id: int, hits: list[Hit]) -> tuple[dict[int, str], dict[int, tuple[str, int]]]:
    """Names of the hits' tables and columns: read with the hits (PostgreSQL), else one look-up each."""
    tables = {h.table_id: h.table_name for h in hits if h.table_name is not None}
    columns = {h.column_id: (h.column_name, h.table_id) for h in hits if h.column_name is not None}
    table_ids = {h.table_id for h in hits} - tables.keys()
    column_ids = {h.column_id for h in hits} - columns.keys()
    if table_ids:
        tables.update(
            (int(r.id), r.name)
            for r in db.session.execute(
                sa.text("SELECT id, name FROM tables WHERE workspace_id = :w AND id = ANY(:ids)"),
                {"w": workspace_id, "ids": list(table_ids)},
            )
        )
    if column_ids:
        columns.update(
            (int(r.id), (r.name, int(r.table_id)))
            for r in db.session.execute(
                sa.text("SELECT id, name, table_id FROM table_columns WHERE workspace_id = :w AND id = ANY(:ids)"),
                {"w": workspace_id, "ids": list(column_ids)},
            )
        )
    return tables, columns


def highlight(value: str, query: ParsedQuery) -> tuple[tuple[str, bool], ...]:
    """Split ``value`` into (text, matched) parts: each query word, or its longest prefix of three or
    more letters found in the text (so "acmee" marks "Acme"), is marked. The caller escapes the parts."""
    spans: list[tuple[int, int]] = []
    lower = value.lower()
    for token in sorted(set(query.tokens) | ({query.norm} if query.norm else set()), key=len, reverse=True):
        for size in range(len(token), min(len(token), 3) - 1, -1):
            piece = token[:size]
            found = [(m.start(), m.end()) for m in re.finditer(re.escape(piece), lower)]
            if found:
                spans.extend(found)
                break
    if not spans:
        return ((value, False),)
    spans.sort()
    merged: list[list[int]] = []
    for start, end in spans:
        if merged and start <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], end)
        else:
            merged.append([start, end])
    parts: list[tuple[str, bool]] = []
    at = 0
    for start, end in merged:
        if start > at:
            parts.append((value[at:start], False))
        parts.append((value[start:end], True))
        at = end
    if at < len(value):
        parts.append((value[at:], False))
    return tuple(parts)


def _best_per_row(hits: list[Hit]) -> list[Hit]:
    best: dict[tuple[int, int], Hit] = {}
    for hit in hits:
        key = (hit.table_id, hit.row_id)
        held = best.get(key)
        if held is None or (hit.score, -hit.column_id) > (held.score, -held.column_id):
            best[key] = hit
    return sorted(best.values(), key=lambda h: (-h.score, h.table_id, h.row_id))


def _column_label(column_id: int, tables: dict[int, str], columns: dict[int, tuple[str, int]]) -> str:
    name, table_id = columns.get(column_id, ("?", 0))
    return f"{name} · {tables.get(table_id, '?')}"


def _facets(rows: list[Hit], tables: dict[int, str], columns: dict[int, tuple[str, int]]) -> dict[str, list[Facet]]:
    by_table = Counter(h.table_id for h in rows)
    by_column = Counter(h.column_id for h in rows)
    by_state = Counter(s for h in rows for s in set(h.states))
    by_provider = Counter(p for h in rows for p in set(h.providers))

    def ordered(counter: Counter, label) -> list[Facet]:
        return [Facet(str(k), label(k), n) for k, n in sorted(counter.items(), key=lambda kv: (-kv[1], str(kv[0])))]

    return {
        "table": ordered(by_table, lambda k: tables.get(k, "?")),
        "column": ordered(by_column, lambda k: _column_label(k, tables, columns)),
        "state": ordered(by_state, lambda k: CELL_STATE_LABELS.get(k, k.replace("_", " ").capitalize())),
        "provider": ordered(by_provider, lambda k: k),
    }


def _ranked(
    workspace_id: int, query: ParsedQuery, filters: Filters
) -> tuple[list[Hit], list[Hit], dict[int, str], dict[int, tuple[str, int]]]:
    """Every match and the filtered ones (best cell per row, ranked), and the names they need."""
    eng = engine()
    everything = _best_per_row(eng.find(workspace_id, query, Filters(), CAP))
    chosen = everything if filters.empty else _best_per_row(eng.find(workspace_id, query, filters, CAP))
    tables, columns = _names(workspace_id, everything + chosen)
    return everything, chosen, tables, columns


def _result_row(h: Hit, query: ParsedQuery, tables: dict[int, str], columns: dict[int, tuple[str, int]]) -> ResultRow:
    return ResultRow(
        table_id=h.table_id,
        table_name=tables.get(h.table_id, "?"),
        row_id=h.row_id,
        column_id=h.column_id,
        column_name=columns.get(h.column_id, ("?", 0))[0],
        value=h.value,
        score=h.score,
        states=h.states,
        providers=h.providers,
        segments=highlight(h.value, query),
    )


def search(
    workspace: Workspace,
    role: str,
    raw_query: object,
    filters: Filters = Filters(),
    *,
    page: int = 1,
    per_page: int = 20,
) -> Results:
    """Rows of ``workspace`` matching the query, best first, with facets (counted over every match,
    before the facet filters, so each chip says how many it would show)."""
    _require(role)
    query = check_query(raw_query)
    if page < 1 or not 1 <= per_page <= PER_PAGE_MAX:
        raise ValidationFailed("page starts at 1; per_page is 1 to 100.", fields={"page": ["out of range"]})
    everything, chosen, tables, columns = _ranked(workspace.id, query, filters)
    window = chosen[(page - 1) * per_page : page * per_page]
    rows = [_result_row(h, query, tables, columns) for h in window]
    return Results(
        query=query.raw,
        rows=rows,
        total=len(chosen),
        capped=len(chosen) >= CAP,
        page=page,
        per_page=per_page,
        facets=_facets(everything, tables, columns),
    )


@dataclass(frozen=True)
class TypeaheadGroup:
    table_id: int
    table_name: str
    rows: list[ResultRow]


def typeahead(workspace: Workspace, role: str, raw_query: object) -> list[TypeaheadGroup]:
    """The top matches grouped by table: at most five tables, three rows each, best table first.

    The same ranking as ``search`` over its first 100 rows; only the rows shown are highlighted,
    and no facets are counted."""
    _require(role)
    query = check_query(raw_query)
    _everything, ranked, tables, columns = _ranked(workspace.id, query, Filters())
    groups: dict[int, TypeaheadGroup] = {}
    for hit in ranked[:PER_PAGE_MAX]:
        group = groups.get(hit.table_id)
        if group is None:
            if len(groups) >= TYPEAHEAD_TABLES:
                continue
            group = groups[hit.table_id] = TypeaheadGroup(hit.table_id, tables.get(hit.table_id, "?"), [])
        if len(group.rows) < TYPEAHEAD_PER_TABLE:
            group.rows.append(_result_row(hit, query, tables, columns))
    return list(groups.values())


def queue_sync(table, *_args) -> None:
    """Tables' change hook: index the rows this transaction wrote right after it commits.

    The storage triggers have marked the rows already; this only wakes the sync through the
    outbox (once per table and transaction) instead of waiting for the scheduler's sweep.
    """
    queued: set[int] = db.session.info.setdefault("morket_search_queued", set())
    if table.id in queued:
        return
    queued.add(table.id)
    # A job id of its own: a sync already running for this table may have read the marks before
    # this commit, so this commit's rows need a job of their own (it finds nothing if beaten to them).
    enqueue_after_commit(
        "morket.search.tasks.sync_search", table.id, job_id=f"search-sync-{table.id}-{uuid.uuid4().hex[:16]}"
    )


WAKE_MS = 1000  # a deferred writer enqueues a table's sync at most once in this many milliseconds


def defer_sync(table_id: int) -> None:
    """For a writer of many small transactions (inbound webhooks): no outbox job for ``table_id`` in
    this transaction; the caller calls ``wake_sync`` after its commit instead. The storage triggers
    have marked the rows either way, and the scheduler's sweep indexes whatever a wake missed."""
    db.session.info.setdefault("morket_search_queued", set()).add(int(table_id))


_woken: dict[tuple[int, int], float] = {}  # (Redis client, table) -> when this process last woke it


def wake_sync(table_id: int) -> None:
    """After a deferred commit: enqueue the table's sync straight to RQ, at most once per ``WAKE_MS``
    (one Redis ``SET NX``, and none when this process woke the table less than that ago). Redis down
    costs only freshness: the sweep runs every two seconds."""
    client = redis_connection()
    now, key = time.monotonic(), (id(client), int(table_id))
    if now - _woken.get(key, -WAKE_MS) < WAKE_MS / 1000:
        return  # this process woke it a moment ago: not even the round trip
    _woken[key] = now
    try:
        if client.set(f"morket:search:wake:{int(table_id)}", 1, nx=True, px=WAKE_MS):
            enqueue_now(
                "morket.search.tasks.sync_search",
                int(table_id),
                job_id=f"search-sync-{int(table_id)}-{uuid.uuid4().hex[:16]}",
            )
    except RedisError as exc:
        log.warning("search: could not wake the sync", extra={"data": {"table": table_id, "error": str(exc)}})


@event.listens_for(Session, "after_commit")
@event.listens_for(Session, "after_rollback")
def _forget_queued(session: Session) -> None:
    session.info.pop("morket_search_queued", None)
