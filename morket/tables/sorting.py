"""Sorts that do not make a user wait: a large table's view order is built by a job, while the grid
answers its first windows with a top-k read and shows the build's progress.

A sorted or filtered view reads its windows from its order table (``storage.build_order``). Building
that order is one sort of every row: about a second at 1,000,000 rows, far more at 10,000,000. Below
``BACKGROUND_ORDER_AT`` rows the window read builds it at once, as before. At or above it:

- The window read queues ``tables.tasks.build_view_order`` (one per view at a time: a Redis key,
  which also carries the build's progress) and answers at once. Windows ending within
  ``TOP_WINDOW_DEPTH`` rows are one top-k read (``ORDER BY <sort keys>, id LIMIT n OFFSET start``,
  a bounded heap sort in one scan, no order table); deeper windows are empty until the order is
  built, and the grid shows "Sorting N rows… P%" and asks again every second. A view whose previous
  order exists (its sort is unchanged and an edit or insert made it stale) keeps reading that order
  meanwhile: its cells are read through the join, so they are current, and only edited rows sit at
  their old places until the new order is swapped in.
- The job marks the view fresh first (short transaction: any write after it marks the view stale
  again, so nothing is missed), builds the new order into ``o_<t>_<v>_n`` in a REPEATABLE READ
  snapshot that also reads the table's row count and key gaps, then swaps it in under the table's
  row lock ``FOR SHARE``: when rows were deleted meanwhile (the count or gaps moved), the rows
  that are gone are taken out of the new order and their ranks become the view's gaps. The build
  holds no lock that a write waits for; a change of the view's sort or filters during the build
  discards it.

Progress is an estimate: elapsed time over the expected time (rows over the rows per second the
last builds of this Redis measured). PostgreSQL reports no progress for a ``CREATE TABLE AS``.
"""

from __future__ import annotations

import contextlib
import json
import logging
import time
from typing import Any

import sqlalchemy as sa
from flask import current_app
from redis import Redis
from redis.exceptions import RedisError
from sqlalchemy import select

from morket.core.db import driver_rows
from morket.core.jobs import enqueue_after_commit, enqueue_now
from morket.extensions import db
from morket.tables import live, storage
from morket.tables.access import forget_no_fresh_orders
from morket.tables.filters import compile_filters, compile_sort
from morket.tables.models import Table, View

log = logging.getLogger("morket.tables.sorting")

# Tables of at least this many rows get their view orders built by a job.
BACKGROUND_ORDER_AT = 100_000
# Windows that end within this many rows are answered by a top-k read while the order builds.
TOP_WINDOW_DEPTH = 1_000
# Rows per second a build is expected to take before any build was measured.
DEFAULT_RATE = 500_000
# Sort memory of a build (per process: the leader and each parallel worker). With the default 4MB,
# 10,000,000 keys took 54-69 s in many merge passes; with 256MB 17-21 s (docs/PERFORMANCE.md).
BUILD_WORK_MEM = "256MB"
# Seconds before a view whose build failed gets another (the retries of the job aside).
FAILED_BUILD_PAUSE_S = 60
_KEY = "morket:order-build:{view_id}"
_RATE_KEY = "morket:order-build-rate"


def _redis() -> Redis:
    return current_app.extensions["morket_redis"]


def in_background(row_count: int) -> bool:
    """Whether a table of ``row_count`` rows has its view orders built by a job."""
    return row_count >= BACKGROUND_ORDER_AT


def building(view: Any) -> bool:
    """Whether a job is building a view's first order (marked fresh, no order table yet)."""
    return bool(view.is_ordered and not view.order_stale and view.order_size is None)


def _expected_seconds(rows: int, client: Redis) -> float:
    try:
        rate = float(client.get(_RATE_KEY) or DEFAULT_RATE)
    except (RedisError, ValueError):
        rate = DEFAULT_RATE
    return max(1.0, rows / max(rate, 1.0))


def queue_build(table_id: int, view_id: int, rows: int) -> dict[str, Any]:
    """Queue the view's order build unless one is queued or running; return its progress record.

    The record is ``{"rows", "queued", "expected_s"}`` plus ``"started"`` once the job runs. It
    expires on its own (a worker that died leaves no view waiting for ever); the job deletes it.
    """
    client = _redis()
    key = _KEY.format(view_id=int(view_id))
    now = time.time()
    expected = _expected_seconds(rows, client)
    record = {"rows": int(rows), "queued": now, "expected_s": expected}
    try:
        if client.set(key, json.dumps(record), nx=True, ex=int(120 + 6 * expected)):
            try:
                enqueue_now(
                    "morket.tables.tasks.build_view_order",
                    int(table_id),
                    int(view_id),
                    job_id=f"order-build-{int(table_id)}-{int(view_id)}-{int(now * 1000)}",
                )
            except RedisError:
                client.delete(key)
                raise
            return record
        found = client.get(key)
    except RedisError:
        log.warning("order build not queued", extra={"data": {"view_id": view_id}})
        return record
    try:
        return json.loads(found) if found else record
    except ValueError:
        return record


def progress_percent(record: dict[str, Any]) -> int:
    """The build's estimated progress, 0 to 99 (100 is the order in place, which no record says)."""
    started = record.get("started")
    if not started:
        return 0
    elapsed = max(0.0, time.time() - float(started))
    return int(min(99, 100 * elapsed / max(float(record.get("expected_s") or 1.0), 0.1)))


def _view_spec(view_id: int) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    found = db.session.execute(select(View.sort, View.filters).where(View.id == view_id)).first()
    return (list(found[0] or []), dict(found[1] or {})) if found else ([], {})


def top_window(table: Any, view: Any, start: int, limit: int) -> list[tuple[Any, ...]]:
    """Rows [start, start + limit) of the view's order, read without the order table: one scan
    with a bounded heap sort (the same keys, ties by id and empty cells last, as the built order)."""
    sort, filters = _view_spec(view.id)
    store = storage.storage_for(table)
    rows = store.rows
    statement = select(rows.c.id, *store.columns.values(), rows.c.cell_state)
    where = compile_filters(filters, store)
    if where is not None:
        statement = statement.where(where)
    keys = storage.sort_keys(compile_sort(sort, store), rows)
    statement = statement.order_by(*keys, rows.c.id).limit(limit).offset(start)
    compiled = statement.compile(dialect=db.engine.dialect)
    connection = db.session.connection()
    # A few hundred rows out: compiling the plan to machine code (JIT) costs more than it saves.
    connection.exec_driver_sql("SET LOCAL jit = off")
    return driver_rows(connection, str(compiled), dict(compiled.params))


def window_while_building(
    table: Any, view: Any, start: int, limit: int
) -> tuple[list[Any] | None, int, dict[str, Any]]:
    """Answer a window of a large view whose order is stale or not built: queue the build, and read
    the previous order if there is one, else a top-k read for the first rows, else nothing yet.

    Returns the raw rows (id, cells…, cell_state), or None to read the previous order, the total to
    show and the build's progress record.
    """
    record = queue_build(table.id, view.id, table.row_count)
    if view.order_size is not None and storage.order_exists(table.id, view.id):
        return None, int(view.order_size), record  # the caller reads the previous order
    _, filters = _view_spec(view.id)
    total = table.row_count  # a sort keeps every row; a filter keeps at most that many
    if start + limit > TOP_WINDOW_DEPTH:
        return [], total, record
    found = top_window(table, view, start, limit)
    if len(found) < limit and (found or start == 0):
        total = start + len(found)  # the filter's last row is in this window: the count is known
    elif not filters.get("conditions"):
        total = table.row_count
    return found, total, record


# --- the job ---------------------------------------------------------------------------------------


def _next_name(table_id: int, view_id: int) -> str:
    return storage.order_name(table_id, view_id) + "_n"


def build_in_background(table_id: int, view_id: int) -> int | None:
    """Build a view's order off the request path and swap it in; return its size (None: nothing to do)."""
    client = _redis()
    key = _KEY.format(view_id=int(view_id))
    began = time.time()
    try:
        found = client.get(key)
        record = json.loads(found) if found else {}
        record["started"] = began
        client.set(key, json.dumps(record), xx=True, keepttl=True)
    except (RedisError, ValueError):
        pass
    try:
        size = _build(table_id, view_id)
    except BaseException:
        db.session.rollback()
        _mark_stale(view_id)
        # The record stays a while: open grids do not queue a build a second while one keeps failing.
        with contextlib.suppress(RedisError):
            client.expire(key, FAILED_BUILD_PAUSE_S)
        raise
    with contextlib.suppress(RedisError):
        client.delete(key)
    if size:
        with contextlib.suppress(RedisError):  # a courtesy to the next sort: lost, the next build queues it
            enqueue_now(
                "morket.tables.tasks.index_sort_key",
                int(table_id),
                int(view_id),
                job_id=f"sort-index-{int(table_id)}-{int(view_id)}-{int(time.time() * 1000)}",
            )
        took = max(time.time() - began, 0.001)
        try:
            previous = float(client.get(_RATE_KEY) or 0)
            rate = size / took if not previous else 0.5 * previous + 0.5 * size / took
            client.set(_RATE_KEY, str(rate))
        except (RedisError, ValueError):
            pass
    return size


def _mark_stale(view_id: int) -> None:
    """A failed build leaves the view stale, so the next read queues another."""
    with db.engine.begin() as connection:
        connection.execute(sa.update(View).where(View.id == view_id).values(order_stale=True))


def _locked(table_id: int, view_id: int) -> tuple[Table | None, View | None]:
    table = db.session.scalars(
        select(Table).where(Table.id == table_id).with_for_update(read=True).execution_options(populate_existing=True)
    ).one_or_none()
    if table is None:
        return None, None
    view = db.session.scalars(
        select(View)
        .where(View.id == view_id, View.table_id == table_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    ).one_or_none()
    return table, view


def _build(table_id: int, view_id: int) -> int | None:
    # 1. Mark the view fresh: a write committed after this marks it stale again.
    table, view = _locked(table_id, view_id)
    if view is None or not view.is_ordered or not view.order_stale:
        db.session.rollback()
        return None
    sort, filters = list(view.sort or []), dict(view.filters or {})
    if not storage.order_exists(table_id, view_id):
        view.order_size = None
    view.order_stale = False
    db.session.commit()

    # 2. Build the new order in one snapshot, with the table's count and gaps as that snapshot saw them.
    name = _next_name(table_id, view_id)
    db.session.connection(execution_options={"isolation_level": "REPEATABLE READ"})
    table = db.session.scalars(
        select(Table).where(Table.id == table_id).execution_options(populate_existing=True)
    ).one_or_none()
    if table is None:
        db.session.rollback()
        return None
    marks = (table.row_count, table.pos_base, list(table.pos_gaps or []))
    store = storage.storage_for(table)
    storage.set_local("work_mem", BUILD_WORK_MEM)
    storage.drop_relation(name)
    built = storage.build_order(
        table_id,
        view_id,
        compile_sort(sort, store),
        compile_filters(filters, store),
        store.rows,
        into=name,
    )
    db.session.commit()

    # 3. Swap it in under the table's row lock; rows deleted since the snapshot leave it as gaps.
    try:
        table, view = _locked(table_id, view_id)
        if table is None or view is None or view.sort != sort or (view.filters or {}) != filters:
            storage.drop_relation(name)
            db.session.commit()
            return None
        storage.set_lock_timeout("5s")
        base, gaps = 1, []
        if (table.row_count, table.pos_base, list(table.pos_gaps or [])) != marks:
            removed = storage.remove_gone_rows(name, table.storage_name)
            if removed:
                built -= len(removed)
                base, gaps = storage.record_gaps(name, "rank", 1, [], removed)
        storage.swap_order(table_id, view_id, name)
        view.order_size, view.rank_base, view.rank_gaps = built, base, gaps
        if built >= storage.ORDER_INDEX_AT:
            enqueue_after_commit(
                "morket.tables.tasks.index_order_rows", table_id, view_id, job_id=f"order-index-{table_id}-{view_id}"
            )
        forget_no_fresh_orders(table_id)
        live.announce(table_id, "updated")  # open grids of the view fetch their window again
        db.session.commit()
    except BaseException:
        db.session.rollback()
        storage.drop_relation(name)
        db.session.commit()
        raise
    return built


# --- the index on a sort's first key ---------------------------------------------------------------

# Sort-key indexes a table keeps at most (each one is written by every insert and edit of its column).
MAX_SORT_INDEXES = 4


def index_first_key(table_id: int, view_id: int) -> None:
    """Index the view's first sort key (its direction, empty cells last), built CONCURRENTLY once the
    order is in place: the next sort that starts with that key reads its first windows through it
    (a few index pages) instead of scanning the table. Kept for later sorts; at most
    ``MAX_SORT_INDEXES`` per table; an index left invalid by a failed build is dropped and redone."""
    found = db.session.execute(select(View.sort).where(View.id == view_id)).scalar()
    table = db.session.get(Table, table_id)
    column = None
    if found and table is not None:
        key = found[0]
        column = storage.storage_for(table).columns.get(int(key["column_id"]))
    if column is None:
        db.session.rollback()
        return
    rows = table.storage_name
    desc = key.get("dir") == "desc"
    name = f"{rows}_k{int(key['column_id'])}{'d' if desc else 'a'}"
    collate = ' COLLATE "C"' if isinstance(column.type, sa.Text) and storage.sorts_bytewise() else ""
    expression = f"{column.name}{collate}{' DESC' if desc else ''} NULLS LAST"
    # No transaction of this session may stay open (nor be opened again below by a lazy load):
    # CREATE INDEX CONCURRENTLY waits for every transaction older than its own to end.
    db.session.rollback()
    with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        existing = dict(
            connection.execute(
                sa.text(
                    "SELECT c.relname, i.indisvalid FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid "
                    "WHERE i.indrelid = CAST(:rel AS regclass) AND c.relname LIKE :pattern"
                ),
                {"rel": f"ut.{rows}", "pattern": f"{rows}\\_k%"},
            ).all()
        )
        if existing.get(name) is True:
            return
        if name in existing:
            connection.exec_driver_sql(f"DROP INDEX CONCURRENTLY IF EXISTS ut.{name}")
        elif len(existing) >= MAX_SORT_INDEXES:
            return
        # A reader holding a snapshot for longer leaves the index invalid: the next build redoes it.
        connection.exec_driver_sql("SET lock_timeout = '60s'")
        try:
            connection.exec_driver_sql(f"CREATE INDEX CONCURRENTLY IF NOT EXISTS {name} ON ut.{rows} ({expression})")
        except sa.exc.DBAPIError:
            log.warning("sort key index not built", extra={"data": {"table_id": table_id, "index": name}})
