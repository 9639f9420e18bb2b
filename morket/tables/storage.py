"""Physical storage of user tables: one typed PostgreSQL table per user table, in the ``ut`` schema.

Layout of ``ut.t_<table_id>``:

- ``id bigint generated always as identity primary key``: the row's stable identity;
- ``pos bigint not null`` with a unique (deferrable) constraint: the default order;
- ``c_<column_id>``: one typed column per user column (never the user's name);
- ``cell_state jsonb``: per-cell state of enrichment columns, added by later features.

Positions without OFFSET: ``pos`` values are consecutive from ``tables.pos_base`` except for the
deleted ones, which the table remembers in ``tables.pos_gaps`` (sorted; a few thousand at most).
``key_of`` maps a window's positions [start, start + limit) to the ``pos`` range that holds
exactly those rows (a bisect over the gaps, in Python), so every window is one index range scan
``pos >= lo AND pos < hi`` at any depth, and the count is the table's kept ``row_count``. Appends
take the key after the last row. Deleting is a DELETE plus a few gaps, never a renumbering on
the request path; once more than ``GAP_LIMIT`` gaps pile up, a job (``tables.tasks.compact_keys``)
closes them in short steps (``compact_step``: each moves the rows between two gaps by a key range
and commits; the unique constraint is ``DEFERRABLE INITIALLY IMMEDIATE`` so PostgreSQL checks it at
the end of each statement rather than row by row). Undoing a delete puts the rows back into their
remembered gaps when they are still there (no row moves). Measured with ``python -m bench.grid``:
deleting one row in the middle of 100,000 rows took 0.63 s when every delete renumbered, 20 ms with
gaps; 10,000,000 rows took 0.94 s while the sorted view's order was scanned for the row, which the
order's ``row_id`` index (built by a job after the order, ``index_order_rows``) now finds.

A sorted or filtered view keeps the same kind of keys in its own order table
``ut.o_<table_id>_<view_id> (rank, row_id)`` with ``rank_base``, ``rank_gaps`` and ``order_size``
on the view. It is built with one ``CREATE TABLE … AS SELECT row_number() OVER (ORDER BY <sort
keys>, id) … WHERE <filters>``; its window is a range scan on ``rank`` joined to the rows by id.
Order tables are UNLOGGED: they are derived data, and a crash that empties one is detected (the
view records its size) and repaired by a rebuild. Standbys cannot read unlogged tables, so sorted
and filtered windows are read on the primary.

Keeping a view's order right on writes (``service``): deleted rows are removed from every built
order and their ranks become the view's gaps; inserted rows, and edits of a column that the view sorts,
filters or searches on, mark the order stale, and the next read rebuilds it (one builder at a time,
under a row lock on the view; from ``sorting.BACKGROUND_ORDER_AT`` rows a job builds it under another
name and ``swap_order`` puts it in place). Edits of other columns leave orders alone: a window reads the cells
through the join, so it always shows current values.

PostgreSQL allows 1,600 attributes per table and dropped columns keep their attribute number until
the table is rewritten, so ``add_column`` checks ``max(attnum)`` and rewrites the table (a copy
into a fresh table, then a swap) when the next column would pass ``REWRITE_AT_ATTNUM``.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql as pg
from sqlalchemy.sql.visitors import replacement_traverse

from morket.core.jobs import enqueue_after_commit
from morket.extensions import db
from morket.tables.models import USER_SCHEMA, Column, Table

MAX_USER_COLUMNS = 100
UNDEFINED_TABLE = "42P01"
# Far below PostgreSQL's 1,600 so that a rewrite happens long before an ALTER could fail.
REWRITE_AT_ATTNUM = 1400

_PG_TYPES: dict[str, Any] = {
    "number": sa.Numeric(),
    "currency": sa.Numeric(),
    "percent": sa.Numeric(),
    "date": sa.Date(),
    "datetime": sa.DateTime(timezone=True),
    "checkbox": sa.Boolean(),
    "multi_select": pg.ARRAY(sa.Text()),
    "json": pg.JSONB(),
    "enrichment": pg.JSONB(),
}
_SQL_TYPES: dict[str, str] = {
    "number": "numeric",
    "currency": "numeric",
    "percent": "numeric",
    "date": "date",
    "datetime": "timestamptz",
    "checkbox": "boolean",
    "multi_select": "text[]",
    "json": "jsonb",
    "enrichment": "jsonb",
}


def sql_type(column_type: str) -> str:
    """Return the PostgreSQL type of a user column type (text unless it has a better one)."""
    return _SQL_TYPES.get(column_type, "text")


def rows_name(table_id: int) -> str:
    return f"t_{int(table_id)}"


def order_name(table_id: int, view_id: int) -> str:
    return f"o_{int(table_id)}_{int(view_id)}"


def _q(name: str) -> str:
    """Qualify a generated (integer-derived, never user-supplied) name with the user schema."""
    return f"{USER_SCHEMA}.{name}"


def _exec(sql: str, params: dict[str, Any] | None = None) -> sa.CursorResult:
    return db.session.execute(sa.text(sql), params or {})


# --- Core Table objects, cached per table version -------------------------------------------------


@dataclass(frozen=True, eq=False)
class Storage:
    """The Core objects of one table version: the rows table and its user columns by column id."""

    rows: sa.Table
    columns: dict[int, sa.Column]
    types: dict[int, str]
    windows: dict[int | None, sa.Select] = field(default_factory=dict)
    window_sqls: dict[int | None, str] = field(default_factory=dict)

    def window(self, table_id: int, view_id: int | None) -> sa.Select:
        """Return the cached SELECT of a window between keys ``lo`` and ``hi`` (an index range).

        ``key_of`` turns the window's positions into those keys; the statement is the same for
        the default order (``pos``) and for a view's order (``rank``).
        """
        found = self.windows.get(view_id)
        if found is not None:
            return found
        rows = self.rows
        cols = [rows.c.id, *self.columns.values(), rows.c.cell_state]
        lo, hi = sa.bindparam("lo", type_=sa.BigInteger), sa.bindparam("hi", type_=sa.BigInteger)
        if view_id is None:
            found = sa.select(*cols).where(rows.c.pos >= lo, rows.c.pos < hi).order_by(rows.c.pos)
        else:
            order = order_table(table_id, view_id)
            found = (
                sa.select(*cols)
                .select_from(order.join(rows, rows.c.id == order.c.row_id))
                .where(order.c.rank >= lo, order.c.rank < hi)
                .order_by(order.c.rank)
            )
        self.windows[view_id] = found
        return found

    def window_sql(self, table_id: int, view_id: int | None) -> str:
        """Return ``window`` compiled once to the driver's SQL (bound as ``lo`` and ``hi``).

        The grid reads a window per scroll step; running the compiled text skips building the
        statement's cache key and looking it up on every read.
        """
        found = self.window_sqls.get(view_id)
        if found is None:
            compiled = self.window(table_id, view_id).compile(dialect=db.engine.dialect)
            found = self.window_sqls[view_id] = str(compiled)
        return found


_CACHE: OrderedDict[tuple[Any, ...], Storage] = OrderedDict()
_ORDERS: OrderedDict[tuple[Any, ...], sa.Table] = OrderedDict()
_CACHE_SIZE = 512


def storage_for(table: Table) -> Storage:
    """Return the Core Table for ``table``'s current layout, building it once per version.

    The key carries the column ids and types as well as the version: a version number taken by
    a transaction that rolled back can be taken again by another layout.
    """
    live = table.live_columns
    signature = tuple((c.id, c.type) for c in live)
    key = (table.id, table.version, signature)
    found = _CACHE.get(key)
    if found is not None:
        _CACHE.move_to_end(key)
        return found
    metadata = sa.MetaData(schema=USER_SCHEMA)
    user_cols = {c.id: sa.Column(c.storage_name, _PG_TYPES.get(c.type, sa.Text())) for c in live}
    rows = sa.Table(
        rows_name(table.id),
        metadata,
        sa.Column("id", sa.BigInteger, primary_key=True),
        sa.Column("pos", sa.BigInteger, nullable=False),
        *user_cols.values(),
        sa.Column("cell_state", pg.JSONB),
    )
    built = Storage(rows=rows, columns={cid: rows.c[col.name] for cid, col in user_cols.items()}, types=dict(signature))
    _CACHE[key] = built
    while len(_CACHE) > _CACHE_SIZE:
        _CACHE.popitem(last=False)
    return built


def order_table(table_id: int, view_id: int) -> sa.Table:
    """Return the Core Table of a view's materialised order."""
    key = ("order", table_id, view_id)
    found = _ORDERS.get(key)
    if found is None:
        found = _ORDERS[key] = _order_table(table_id, view_id)
        while len(_ORDERS) > _CACHE_SIZE:
            _ORDERS.popitem(last=False)
    return found


def _order_table(table_id: int, view_id: int) -> sa.Table:
    return sa.Table(
        order_name(table_id, view_id),
        sa.MetaData(schema=USER_SCHEMA),
        sa.Column("rank", sa.BigInteger, primary_key=True),
        sa.Column("row_id", sa.BigInteger, nullable=False),
    )


# --- DDL -------------------------------------------------------------------------------------------


def create_rows_table(table_id: int) -> None:
    """Create the empty physical table of a new user table."""
    name = rows_name(table_id)
    _exec(
        f"CREATE TABLE {_q(name)} ("
        " id bigint GENERATED ALWAYS AS IDENTITY,"
        " pos bigint NOT NULL,"
        " cell_state jsonb,"
        f" CONSTRAINT {name}_pk PRIMARY KEY (id),"
        f" CONSTRAINT {name}_pos_key UNIQUE (pos) DEFERRABLE INITIALLY IMMEDIATE)"
    )


def drop_table_storage(table_id: int, view_ids: Sequence[int]) -> None:
    """Drop the rows table and every view order of a user table."""
    for view_id in view_ids:
        drop_order(table_id, view_id)
    _exec(f"DROP TABLE IF EXISTS {_q(rows_name(table_id))}")


def attribute_count(table_id: int) -> int:
    """Return how many attribute numbers the rows table has used, dropped columns included."""
    return int(
        _exec(
            "SELECT max(attnum) FROM pg_attribute WHERE attrelid = CAST(:rel AS regclass) AND attnum > 0",
            {"rel": _q(rows_name(table_id))},
        ).scalar_one()
    )


def add_physical_column(table: Table, column: Column) -> None:
    """Add the column's typed storage; rewrite the table first when dropped columns piled up."""
    if attribute_count(table.id) + 1 > REWRITE_AT_ATTNUM:
        rewrite_rows_table(table, adding=column)
    _exec(f"ALTER TABLE {_q(rows_name(table.id))} ADD COLUMN {column.storage_name} {sql_type(column.type)}")


def drop_physical_column(table: Table, column: Column) -> None:
    """Drop a column's storage (a catalogue change; the attribute number stays used)."""
    _exec(f"ALTER TABLE {_q(rows_name(table.id))} DROP COLUMN IF EXISTS {column.storage_name}")


def rewrite_rows_table(table: Table, *, adding: Column | None = None) -> None:
    """Copy the rows into a fresh table holding only the kept columns, then swap the names.

    Kept columns are the live ones and the deleted-but-restorable ones (not ``adding``, which has
    no storage yet); row ids are preserved.
    """
    name = rows_name(table.id)
    fresh = f"{name}_rw"
    kept = [c for c in table.columns if c is not adding]
    defs = "".join(f", {c.storage_name} {sql_type(c.type)}" for c in kept)
    names = "".join(f", {c.storage_name}" for c in kept)
    _exec(
        f"CREATE TABLE {_q(fresh)} (id bigint GENERATED ALWAYS AS IDENTITY,"
        f" pos bigint NOT NULL, cell_state jsonb{defs})"
    )
    _exec(
        f"INSERT INTO {_q(fresh)} (id, pos, cell_state{names}) OVERRIDING SYSTEM VALUE "  # noqa: S608 - generated names
        f"SELECT id, pos, cell_state{names} FROM {_q(name)}"
    )
    _exec(
        "SELECT setval(pg_get_serial_sequence(:fresh, 'id'), "  # noqa: S608 - generated names
        f"coalesce((SELECT max(id) FROM {_q(fresh)}), 0) + 1, false)",
        {"fresh": _q(fresh)},
    )
    _exec(f"DROP TABLE {_q(name)}")
    _exec(f"ALTER TABLE {_q(fresh)} RENAME TO {name}")
    _exec(f"ALTER TABLE {_q(name)} ADD CONSTRAINT {name}_pk PRIMARY KEY (id)")
    _exec(f"ALTER TABLE {_q(name)} ADD CONSTRAINT {name}_pos_key UNIQUE (pos) DEFERRABLE INITIALLY IMMEDIATE")


# --- position keys (pos of the rows table, rank of an order table) --------------------------------

# Deleted keys are remembered (at most this many) instead of renumbering the rows at once.
GAP_LIMIT = 1000


def key_of(base: int, gaps: Sequence[int], position: int) -> int:
    """Return the key of the row at ``position``: the smallest k with k - base - #gaps≤k = position."""
    skipped = 0
    while True:
        key = base + position + skipped
        now = bisect_right(gaps, key)
        if now == skipped:
            return key
        skipped = now


def position_of(base: int, gaps: Sequence[int], key: int) -> int:
    """Return the position of the row whose key is ``key``."""
    return key - base - bisect_left(gaps, key)


def record_gaps(
    relation: str, key: str, base: int, gaps: Sequence[int], removed: Sequence[int], *, last: int | None = None
) -> tuple[int, list[int]]:
    """Return the (base, gaps) after the keys in ``removed`` were deleted from ``relation``.

    Gaps at the head move the base; gaps past the last row are forgotten (the next row appended
    takes the key after the last row). Nothing is renumbered here, however many gaps there are:
    past ``GAP_LIMIT`` the caller queues a compaction (``compact_step`` in a job), so a delete costs
    the same at any table size. ``last``: the last key when the caller knows it survived (no lookup).
    """
    merged = sorted(set(gaps).union(removed))
    while merged and merged[0] == base:
        merged.pop(0)
        base += 1
    if last is None:
        first, last = sequence_bounds(relation, key)
        if first is None:
            return base, []
    return base, [g for g in merged if g < last]


def compact_step(
    relation: str, key: str, base: int, gaps: Sequence[int], budget: int, *, downwards: bool
) -> tuple[int, list[int], int]:
    """Close gaps by moving at most about ``budget`` rows; return the new (base, gaps) and the rows moved.

    ``downwards``: the run of free keys at the lowest gap travels up. The rows between the run and the
    next gap move down by the run's length, which frees as many keys just below that gap; the run
    grows by it and goes on, until it passes the last row and is forgotten. Otherwise the run at the
    highest gap travels down the same way and ends in the base. Every step keeps each row's position
    (its key minus the base minus the gaps below it), so a step can commit alone and readers in
    between see the right rows; the list never grows. One UPDATE of a key range per gap passed.
    """
    gaps = sorted(gaps)
    moved = 0
    while gaps and moved < budget:
        if downwards:
            run = 1
            while run < len(gaps) and gaps[run] == gaps[0] + run:
                run += 1
            end = gaps[run - 1]
            upto = gaps[run] if run < len(gaps) else None
            bound = "" if upto is None else f" AND {key} < :upto"
            moved += _exec(
                f"UPDATE {_q(relation)} SET {key} = {key} - :d WHERE {key} > :end{bound}",  # noqa: S608 - generated names
                {"d": run, "end": end, "upto": upto},
            ).rowcount
            gaps = [] if upto is None else [*range(upto - run, upto), *gaps[run:]]
        else:
            run = 1
            while run < len(gaps) and gaps[-1 - run] == gaps[-1] - run:
                run += 1
            start = gaps[-run]
            below = gaps[-run - 1] if run < len(gaps) else None
            bound = "" if below is None else f" AND {key} > :below"
            moved += _exec(
                f"UPDATE {_q(relation)} SET {key} = {key} + :d WHERE {key} < :start{bound}",  # noqa: S608 - generated names
                {"d": run, "start": start, "below": below},
            ).rowcount
            if below is None:
                base += run
                gaps = gaps[: len(gaps) - run]
            else:
                gaps = [*gaps[: len(gaps) - run], *range(below + 1, below + 1 + run)]
    base, gaps = record_gaps(relation, key, base, gaps, [])
    return base, gaps, moved


def sequence_bounds(relation: str, key: str) -> tuple[int | None, int | None]:
    """Return (min, max) of a dense key: two index probes."""
    first, last = _exec(f"SELECT min({key}), max({key}) FROM {_q(relation)}").one()  # noqa: S608 - generated names
    return first, last


# --- view orders -----------------------------------------------------------------------------------


# Collations whose order is the order of the UTF-8 bytes (code point order). PostgreSQL only takes
# its fast path (memcmp and abbreviated keys) for "C" and "POSIX"; "C.UTF-8" sorts the same strings
# in the same order through strcoll, several times slower.
_BYTE_ORDER_COLLATIONS = frozenset({"C", "POSIX", "C.UTF-8", "C.utf8"})
_BYTEWISE: dict[str, bool] = {}


def sorts_bytewise() -> bool:
    """Whether text sort keys get ``COLLATE "C"`` (the database's collation is code point order)."""
    return _sorts_bytewise()


def _sorts_bytewise() -> bool:
    """Whether the database's default collation orders text by code point (checked once per database)."""
    key = db.engine.url.render_as_string(hide_password=True)
    found = _BYTEWISE.get(key)
    if found is None:
        collation = _exec("SELECT datcollate FROM pg_database WHERE datname = current_database()").scalar_one()
        found = _BYTEWISE[key] = collation in _BYTE_ORDER_COLLATIONS
    return found


def _bytewise_text(order_by: Sequence[Any], rows: sa.Table) -> list[Any]:
    """Sort text keys with the "C" collation when that is the same order as the database's collation.

    Only when the two orders are identical, so the built order is exactly what ``ORDER BY`` on the
    table gives; in a database with a linguistic collation the keys are left alone.
    """
    if not _sorts_bytewise():
        return list(order_by)
    text_columns = {c for c in rows.columns if isinstance(c.type, sa.Text)}

    def collate(element: Any) -> Any:
        return element.collate("C") if element in text_columns else None

    return [replacement_traverse(key, {}, collate) for key in order_by]


def sort_keys(order_by: Sequence[Any], rows: sa.Table) -> list[Any]:
    """The ORDER BY keys a view's order is built with (text in byte order where that is the same order)."""
    return _bytewise_text(order_by, rows)


def build_order(
    table_id: int, view_id: int, order_by: Sequence[Any], where: Any | None, rows: sa.Table, *, into: str | None = None
) -> int:
    """(Re)build a view's order table with one CREATE TABLE … AS SELECT row_number() …; return its size.

    Measured with ``python -m bench.grid --rows 1000000`` (see docs/PERFORMANCE.md): text keys in
    byte order and no ANALYZE take about a tenth off; the primary key is built after the rows.
    ``into``: build under that name and leave the view's order alone (``swap_order`` puts it in place).
    """
    name = into or order_name(table_id, view_id)
    drop_relation(name)
    ranked = sa.select(
        sa.func.row_number().over(order_by=[*_bytewise_text(order_by, rows), rows.c.id]).label("rank"),
        rows.c.id.label("row_id"),
    )
    if where is not None:
        ranked = ranked.where(where)
    compiled = ranked.compile(dialect=db.engine.dialect)
    connection = db.session.connection()
    # CREATE TABLE AS writes in bulk (faster than INSERT … SELECT); the filter values stay bound
    # parameters. UNLOGGED: the order is derived data, and skipping the WAL takes about 40 % off a
    # million-row build; a crash empties it and the service rebuilds it (see View.order_size).
    # parallel_workers = 0: the window's rank bounds are only known at run time, so the planner
    # guesses thousands of rows and would start parallel workers for a 100-row read.
    # work_mem stays as configured: with 128MB the one in-memory sort of a million keys took longer
    # than the external merge of small sorted runs (see docs/PERFORMANCE.md).
    built = connection.exec_driver_sql(
        f"CREATE UNLOGGED TABLE {_q(name)} WITH (parallel_workers = 0) AS {compiled}", dict(compiled.params)
    ).rowcount
    # Deferrable like the rows table's pos: compact_step moves ranks in one UPDATE per key range,
    # whose rows may pass through each other's old values whatever plan the statement gets.
    _exec(f"ALTER TABLE {_q(name)} ADD CONSTRAINT {name}_pk PRIMARY KEY (rank) DEFERRABLE INITIALLY IMMEDIATE")
    # No ANALYZE (it took a tenth of a million-row build): a window reads a rank range through
    # the primary key whatever the statistics, and autovacuum analyzes the table soon after.
    if built >= ORDER_INDEX_AT and into is None:
        # A delete finds its rows' ranks through this index; built after the commit, off the build.
        enqueue_after_commit(
            "morket.tables.tasks.index_order_rows", table_id, view_id, job_id=f"order-index-{table_id}-{view_id}"
        )
    return int(built)


# Orders of at least this many rows get their row_id index (below it, a delete's scan takes a few ms).
ORDER_INDEX_AT = 100_000


def index_order_rows(table_id: int, view_id: int) -> bool:
    """Index a view's order by ``row_id`` (the job's short transaction); False when the order is gone.

    Not part of the build: the build's sort stays one sort, and the index follows within seconds
    (``CREATE INDEX`` blocks a delete of rows for that time, never a read). Until it exists a delete
    scans the order for its rows (0.9 s at 10,000,000 rows).
    """
    name = order_name(table_id, view_id)
    _exec("SET LOCAL lock_timeout = '10s'")
    if not order_exists(table_id, view_id):
        return False
    _exec(f"CREATE INDEX IF NOT EXISTS {name}_row ON {_q(name)} (row_id)")
    return True


def drop_order(table_id: int, view_id: int) -> None:
    """Drop a view's order table, and the one a job may be building, if they exist."""
    name = order_name(table_id, view_id)
    _exec(f"DROP TABLE IF EXISTS {_q(name)}, {_q(name + '_n')}")


def drop_relation(name: str) -> None:
    """Drop a generated table of the user schema if it exists."""
    _exec(f"DROP TABLE IF EXISTS {_q(name)}")


def set_lock_timeout(value: str) -> None:
    """Wait at most ``value`` (a constant such as "5s") for a lock, until the transaction ends."""
    set_local("lock_timeout", value)


def set_local(name: str, value: str) -> None:
    """Set a PostgreSQL setting until the transaction ends (``set_config``, the value bound)."""
    _exec("SELECT set_config(:name, :value, true)", {"name": name, "value": value})


def remove_gone_rows(order: str, rows: str) -> list[int]:
    """Delete from an order the rows its table no longer has (deleted while it was built); return their ranks."""
    found = _exec(
        f"DELETE FROM {_q(order)} o WHERE NOT EXISTS "  # noqa: S608 - generated names
        f"(SELECT 1 FROM {_q(rows)} t WHERE t.id = o.row_id) RETURNING o.rank"
    ).scalars()
    return sorted(found)


def swap_order(table_id: int, view_id: int, built: str) -> None:
    """Put an order built under the name ``built`` in place of the view's order (a catalogue change)."""
    name = order_name(table_id, view_id)
    _exec(f"DROP TABLE IF EXISTS {_q(name)}")
    _exec(f"ALTER TABLE {_q(built)} RENAME TO {name}")
    _exec(f"ALTER INDEX {_q(built + '_pk')} RENAME TO {name}_pk")


def order_exists(table_id: int, view_id: int) -> bool:
    """Whether the view's order table exists."""
    return _exec("SELECT to_regclass(:rel) IS NOT NULL", {"rel": _q(order_name(table_id, view_id))}).scalar_one()


def remove_from_order(table_id: int, view_id: int, row_ids: Sequence[int]) -> tuple[list[int], int | None]:
    """Delete rows from a view's order; return the ranks they held (the view records them as gaps)
    and the order's last rank before the delete.

    An order of ``ORDER_INDEX_AT`` rows or more has an index on ``row_id`` soon after it is built
    (``index_order_rows``); a smaller one is scanned (a few milliseconds).
    """
    name = order_name(table_id, view_id)
    found = _exec(
        f"DELETE FROM {_q(name)} WHERE row_id = ANY(:ids) "  # noqa: S608 - generated names
        f"RETURNING rank, (SELECT max(rank) FROM {_q(name)})",
        {"ids": list(row_ids)},
    ).all()
    return [r[0] for r in found], (found[0][1] if found else None)


def dropped_under(exc: sa.exc.DBAPIError) -> bool:
    """Whether a statement failed because a user table's storage was dropped under it (the table was deleted)."""
    return getattr(exc.orig, "sqlstate", None) == UNDEFINED_TABLE and f'relation "{USER_SCHEMA}.' in str(exc.orig)
