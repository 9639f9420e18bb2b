"""The grid's window reads: the fast path of the grid page, and every read of rows by position.

A window of any position is one index range scan on ``pos`` (or on a view's ``rank``), never
``OFFSET``. The grid's window request reads its table, view and columns as plain records in the
same statement as the membership (``member_and_window_source``), then the rows on the driver's
cursor (``read_grid_window``): two statements and no transaction. Anything that writes (building
a stale order, repairing one a crash emptied) returns to a transaction and goes through the ORM.
"""

from __future__ import annotations

import json
from collections import OrderedDict
from contextlib import suppress
from dataclasses import dataclass
from typing import Any, NamedTuple

import sqlalchemy as sa
from sqlalchemy import select

from morket.core.db import driver_rows
from morket.core.errors import NotFound, ValidationFailed
from morket.core.tenancy import transaction_for_writes
from morket.core.types import Actor, Workspace
from morket.extensions import db
from morket.tables import sorting, storage
from morket.tables.access import check_owned, forget_no_fresh_orders, get_table_and_view_or_404
from morket.tables.cells import CellError, check_characters
from morket.tables.filters import compile_filters, compile_sort, search_clause
from morket.tables.models import Table, View
from morket.workspaces.members import MEMBER_COLUMNS, MEMBER_FROM, MEMBER_WHERE, member_params

MAX_WINDOW = 500
MAX_SEARCH_CHARS = 200


class WindowRow(NamedTuple):
    """One row of a window: its id, its position in the view, its cells and their enrichment state.

    ``cells`` follows ``table.live_columns`` (display order), which is how a grid renders it.
    """

    id: int
    position: int
    cells: tuple[Any, ...]
    cell_state: dict[str, Any] | None

    def values(self, table: Table) -> dict[int, Any]:
        """Return the cells keyed by column id."""
        return dict(zip((c.id for c in table.live_columns), self.cells, strict=True))


# --- the grid's window read without the ORM ------------------------------------------------------
#
# A window request needs a handful of fields of the table, its view and its live columns. Loading
# them as ORM objects (identity map, a Column instance per column, the view's JSON parsed once per
# joined column row) cost more than reading and rendering the window itself, so the grid reads
# them with one plain statement into the frozen records below. Columns arrive as one JSON text,
# which keys a small cache of parsed columns: the same layout is parsed once, and any change to a
# column (type, options, hidden, order, deletion) changes the text and so misses the cache.
# Anything that writes (building a stale order, repairing a lost one) goes through the ORM objects.


@dataclass(frozen=True, slots=True)
class ColumnMeta:
    """The fields of a live column that reading and rendering a window use."""

    id: int
    type: str
    config: dict[str, Any]
    hidden: bool
    width: int

    @property
    def storage_name(self) -> str:
        return f"c_{self.id}"


@dataclass(frozen=True, slots=True)
class TableMeta:
    """A table as the window read sees it (same attribute names as ``Table`` for what it uses)."""

    id: int
    workspace_id: int
    version: int
    storage_name: str
    row_count: int
    pos_base: int
    pos_gaps: list[int]
    live_columns: tuple[ColumnMeta, ...]


@dataclass(frozen=True, slots=True)
class ViewMeta:
    """A view as the window read sees it (same attribute names as ``View`` for what it uses)."""

    id: int
    table_id: int
    workspace_id: int
    is_ordered: bool
    order_stale: bool
    order_size: int | None
    rank_base: int
    rank_gaps: list[int]
    hidden_column_ids: list[int]
    widths: dict[str, int]


class Window(NamedTuple):
    """A window read for the grid: the table and view it was read from, its rows and the total."""

    table: Table | TableMeta
    view: View | ViewMeta | None
    rows: list[WindowRow]
    total: int
    wrote: bool  # an order was (re)built: the caller commits to keep it
    sorting: dict[str, Any] | None = None  # the view's order is being built by a job: its progress record


_SOURCE_COLUMNS = """
       t.version, t.storage_name, t.row_count, t.pos_base, t.pos_gaps,
       (SELECT json_agg(json_build_array(c.id, c.type, c.config, c.hidden, c.width)
                        ORDER BY c.position, c.id)::text
          FROM table_columns c WHERE c.table_id = t.id AND c.deleted_at IS NULL) AS columns,
       v.id, v.sort <> '[]'::jsonb OR coalesce(jsonb_array_length(
                 CASE jsonb_typeof(v.filters -> 'conditions') WHEN 'array' THEN v.filters -> 'conditions' END
             ), 0) > 0 AS is_ordered,
       v.order_stale, v.order_size, v.rank_base, v.rank_gaps, v.hidden_column_ids, v.widths"""
_VIEW_JOIN = """
  LEFT JOIN table_views v
         ON v.table_id = t.id AND v.workspace_id = t.workspace_id
        AND v.id = coalesce(%(view_id)s, (SELECT min(f.id) FROM table_views f WHERE f.table_id = t.id))"""
_WINDOW_SOURCE_SQL = f"""
SELECT {_SOURCE_COLUMNS}
  FROM tables t {_VIEW_JOIN}
 WHERE t.id = %(table_id)s AND t.workspace_id = %(workspace_id)s
"""  # noqa: S608 - constant fragments; every value is bound
# The same with the membership, its user and workspace in front (see ``workspaces/members.py``): the
# window request's first statement. No row: not a member; a NULL version: no such table here.
_MEMBER_AND_SOURCE_SQL = f"""
SELECT {MEMBER_COLUMNS}, {_SOURCE_COLUMNS}
  FROM {MEMBER_FROM}
  LEFT JOIN tables t ON t.id = %(table_id)s AND t.workspace_id = w.id {_VIEW_JOIN}
 WHERE {MEMBER_WHERE}
"""  # noqa: S608 - constant fragments; every value is bound
_COLUMN_SETS: OrderedDict[tuple[int, int, str], tuple[ColumnMeta, ...]] = OrderedDict()
_COLUMN_SETS_SIZE = 512


def _column_set(table_id: int, version: int, text: str | None) -> tuple[ColumnMeta, ...]:
    """Return the parsed live columns of a table, parsed once per distinct column layout."""
    key = (table_id, version, text or "")
    found = _COLUMN_SETS.get(key)
    if found is not None:
        with suppress(KeyError):  # another thread evicted it meanwhile: the parsed columns are still good
            _COLUMN_SETS.move_to_end(key)
        return found
    found = tuple(ColumnMeta(int(i), t, c or {}, bool(h), int(w)) for i, t, c, h, w in json.loads(text or "[]"))
    _COLUMN_SETS[key] = found
    while len(_COLUMN_SETS) > _COLUMN_SETS_SIZE:
        try:
            _COLUMN_SETS.popitem(last=False)
        except KeyError:  # emptied by another thread
            break
    return found


def window_source_or_404(workspace: Workspace, table_id: int, view_id: int | None) -> tuple[TableMeta, ViewMeta | None]:
    """Return the workspace's table and its view ``view_id`` (else its first view) as plain records.

    One statement. Raises NotFound for a table of another workspace or a view of another table,
    exactly as ``get_table_and_view_or_404`` does.
    """
    found = (
        db.session.connection()
        .exec_driver_sql(
            _WINDOW_SOURCE_SQL, {"workspace_id": workspace.id, "table_id": int(table_id), "view_id": view_id}
        )
        .first()
    )
    return _window_source(workspace.id, int(table_id), view_id, found)


def member_and_window_source(slug: str, session_ref: Any, table_id: int, view_id: int | None) -> tuple[Any, Any]:
    """The membership of the browser session's user in ``slug`` and a window's source, in one statement.

    Returns the row (None when that user is not a member of ``slug``), which starts with
    ``MEMBER_COLUMNS``, and the (table id, view id, source) where source is what
    ``window_source_or_404`` returns, or the NotFound it raises (to raise once the membership and
    permission checks have passed).
    """
    rows = driver_rows(
        db.session.connection(),
        _MEMBER_AND_SOURCE_SQL,
        {"slug": slug, **member_params(session_ref), "table_id": int(table_id), "view_id": view_id},
    )
    if not rows:
        return None, None
    found = rows[0]
    try:
        source: Any = _window_source(found[3], int(table_id), view_id, found[7:] if found[7] is not None else None)
    except NotFound as error:
        source = error
    return found, (int(table_id), view_id, source)


def _window_source(
    workspace_id: int, table_id: int, view_id: int | None, found: Any
) -> tuple[TableMeta, ViewMeta | None]:
    if found is None:
        raise NotFound("That table does not exist.")
    version, storage_name, row_count, pos_base, pos_gaps, columns, vid = found[:7]
    table = TableMeta(
        table_id,
        workspace_id,
        version,
        storage_name,
        row_count,
        pos_base,
        pos_gaps,
        _column_set(table_id, version, columns),
    )
    if vid is None:
        if view_id is not None:
            raise NotFound("That view does not exist.")
        return table, None
    is_ordered, stale, size, rank_base, rank_gaps, hidden, widths = found[7:]
    view = ViewMeta(
        vid, table.id, workspace_id, bool(is_ordered), stale, size, rank_base, rank_gaps, hidden or [], widths or {}
    )
    return table, view


def read_grid_window(
    workspace: Workspace,
    actor: Actor | None,
    table_id: int,
    view_id: int | None,
    start: int,
    limit: int,
    source: tuple[TableMeta, ViewMeta | None] | None = None,
) -> Window:
    """Return the grid's window [start, start + limit) of a table's view and the view's row count.

    Two statements when the view's order is built (the usual case): the table, view and columns
    (unless ``source`` already holds them, read by ``member_and_window_source``), then the rows. A
    stale order, or one a crash emptied, is rebuilt through the ORM objects in a transaction, and
    ``wrote`` tells the caller to commit.
    """
    start, limit = window_bounds(start, limit)
    table, view = source if source is not None else window_source_or_404(workspace, table_id, view_id)
    ordered = view is not None and view.is_ordered
    if ordered and (sorting.building(view) or (view.order_stale and sorting.in_background(table.row_count))):
        return _window_while_building(table, view, start, limit)
    if not (ordered and view.order_stale):
        rows = _fetch_window(table, view if ordered else None, start, limit)
        if rows or not ordered or start >= (view.order_size or 0):
            total = (view.order_size or 0) if ordered else table.row_count
            return Window(table, view, rows, total, False)
    transaction_for_writes()
    live_table, live_view = get_table_and_view_or_404(workspace, table_id, view.id)
    rows = read_window(workspace, actor, live_table, live_view, start, limit)
    return Window(live_table, live_view, rows, count_rows(workspace, actor, live_table, live_view), True)


def _window_while_building(table: TableMeta, view: ViewMeta, start: int, limit: int) -> Window:
    """A large view's window while a job builds its order (``sorting``): the previous order's rows,
    or the top-k read's, or none yet; the progress record goes with it."""
    found, total, record = sorting.window_while_building(table, view, start, limit)
    if found is None:
        rows = _fetch_window(table, view, start, limit)
    else:
        rows = [WindowRow(r[0], start + i, tuple(r[1:-1]), r[-1]) for i, r in enumerate(found)]
    return Window(table, view, rows, total, False, record)


def _fetch_window(table: Table | TableMeta, view: View | ViewMeta | None, start: int, limit: int) -> list[WindowRow]:
    """Run the window's precompiled SELECT on the session's connection (one statement)."""
    store = storage.storage_for(table)
    sql = store.window_sql(table.id, view.id if view is not None else None)
    keys = _window_keys(table, view, start, limit)
    result = driver_rows(db.session.connection(), sql, keys)
    return [WindowRow(r[0], start + i, r[1:-1], r[-1]) for i, r in enumerate(result)]


# --- reads -----------------------------------------------------------------------------------------


def window_bounds(start: int, limit: int) -> tuple[int, int]:
    """Return ``start`` and ``limit`` checked: a position of 0 or more, 1 to ``MAX_WINDOW`` rows."""
    if isinstance(start, bool) or not isinstance(start, int) or start < 0:
        raise ValidationFailed("The window starts at a position of 0 or more.", fields={"start": ["0 or more"]})
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_WINDOW:
        raise ValidationFailed(f"A window holds 1 to {MAX_WINDOW} rows.", fields={"limit": [f"1 to {MAX_WINDOW}"]})
    return start, limit


def _storable(text: str) -> bool:
    try:
        check_characters(text)
    except CellError:
        return False
    return True


def _window_keys(table: Table, view: View | None, start: int, limit: int) -> dict[str, int]:
    """Map positions [start, start + limit) to the key range holding exactly those rows."""
    base, gaps = (table.pos_base, table.pos_gaps) if view is None else (view.rank_base, view.rank_gaps)
    return {"lo": storage.key_of(base, gaps, start), "hi": storage.key_of(base, gaps, start + limit)}


def window_statement(table: Table, view: View | None, start: int, limit: int) -> sa.Select:
    """Return the one SELECT, with its bounds bound, that reads rows [start, start + limit)."""
    ordered = view is not None and view.is_ordered
    store = storage.storage_for(table)
    keys = _window_keys(table, view if ordered else None, start, limit)
    return store.window(table.id, view.id if ordered else None).params(**keys)


def read_window(
    workspace: Workspace, actor: Actor | None, table: Table, view: View | None, start: int, limit: int
) -> list[WindowRow]:
    """Return the rows at positions [start, start + limit) of the view (or the default order)."""
    check_owned(workspace, table, view)
    start, limit = window_bounds(start, limit)
    ordered = view is not None and view.is_ordered
    if ordered:
        ensure_view_order(workspace, table, view)
    window = _fetch_window(table, view if ordered else None, start, limit)
    if not window and ordered and start < (view.order_size or 0):
        _rebuild_lost_order(workspace, table, view)
        window = _fetch_window(table, view, start, limit)
    return window


def _rebuild_lost_order(workspace: Workspace, table: Table, view: View) -> None:
    """Rebuild an order that a database crash emptied (order tables are unlogged)."""
    view.order_stale = True
    ensure_view_order(workspace, table, view)


def get_row(workspace: Workspace, actor: Actor | None, table: Table, row_id: int) -> WindowRow:
    """Return one row with every live cell (its position is in the default order), or raise NotFound."""
    check_owned(workspace, table)
    store = storage.storage_for(table)
    rows = store.rows
    found = db.session.execute(
        select(rows.c.id, rows.c.pos, *store.columns.values(), rows.c.cell_state).where(rows.c.id == row_id)
    ).first()
    if found is None:
        raise NotFound("That row no longer exists.")
    position = storage.position_of(table.pos_base, table.pos_gaps, found[1])
    return WindowRow(found[0], position, tuple(found[2:-1]), found[-1])


def count_rows(workspace: Workspace, actor: Actor | None, table: Table, view: View | None = None) -> int:
    """Return the number of rows in the table, or in the view after its filters (no scan: kept counts)."""
    check_owned(workspace, table, view)
    if view is None or not view.is_ordered:
        return table.row_count
    ensure_view_order(workspace, table, view)
    return view.order_size or 0


def search_rows(
    workspace: Workspace, actor: Actor | None, table: Table, query: str, *, limit: int = 100
) -> tuple[list[WindowRow], int]:
    """Return the first rows (default order) whose text columns contain ``query``, and the match count."""
    check_owned(workspace, table)
    if not isinstance(query, str) or not query.strip() or len(query) > MAX_SEARCH_CHARS or not _storable(query):
        raise ValidationFailed("Search for 1 to 200 characters of text.", fields={"q": ["1 to 200 characters"]})
    _, limit = window_bounds(0, limit)
    store = storage.storage_for(table)
    rows = store.rows
    match = search_clause(query.strip(), store)
    found = db.session.execute(
        select(rows.c.id, rows.c.pos, *store.columns.values(), rows.c.cell_state)
        .where(match)
        .order_by(rows.c.pos)
        .limit(limit)
    ).all()
    total = db.session.execute(select(sa.func.count()).select_from(rows).where(match)).scalar_one()
    base, gaps = table.pos_base, table.pos_gaps
    return [WindowRow(r[0], storage.position_of(base, gaps, r[1]), tuple(r[2:-1]), r[-1]) for r in found], total


def ensure_view_order(workspace: Workspace, table: Table, view: View) -> None:
    """Rebuild the view's order table if it is stale (one builder at a time per view).

    A rebuild is a write: it takes the table's row lock ``FOR SHARE`` before the view's row, as
    every writer does. ``delete_table`` holds the table's row while it drops the rows table and
    then deletes the view's row, so a builder that held the view's row and then waited for the rows
    table would wait for the delete while the delete waited for it.
    """
    if not view.is_ordered or not (view.order_stale or view.order_size is None):
        return
    db.session.flush()
    if db.session.scalar(select(Table.id).where(Table.id == table.id).with_for_update(read=True)) is None:
        raise NotFound("That table does not exist.")
    # The view's row, locked; a view deleted meanwhile is a 404, not a failed refresh.
    if db.session.scalar(select(View.id).where(View.id == view.id).with_for_update()) is None:
        raise NotFound("That view does not exist.")
    db.session.refresh(view)
    if not (view.order_stale or view.order_size is None):
        return
    store = storage.storage_for(table)
    view.order_size = storage.build_order(
        table.id, view.id, compile_sort(view.sort or [], store), compile_filters(view.filters or {}, store), store.rows
    )
    view.rank_base, view.rank_gaps = 1, []
    view.order_stale = False
    forget_no_fresh_orders(table.id)
    db.session.flush()


def row_position(workspace: Workspace, table: Table, view: View | None, row_id: int) -> int | None:
    """Return the position of row ``row_id`` in ``view``'s order (the default order without one).

    None when the table has no such row, or the view's filters leave it out. The default order
    reads the row's key and counts the gaps before it (no scan, at any depth); a sorted or
    filtered view looks the row up in its built order.
    """
    check_owned(workspace, table)
    rows = storage.storage_for(table).rows
    key = db.session.execute(select(rows.c.pos).where(rows.c.id == row_id)).scalar()
    if key is None:
        return None
    if view is None or not view.is_ordered:
        return storage.position_of(table.pos_base, table.pos_gaps or [], int(key))
    if sorting.building(view) or (view.order_stale and sorting.in_background(table.row_count)):
        sorting.queue_build(table.id, view.id, table.row_count)
        return None  # a job builds the order: the grid opens at the top and the row's panel
    ensure_view_order(workspace, table, view)
    order = storage.order_table(table.id, view.id)
    rank = db.session.execute(select(order.c.rank).where(order.c.row_id == row_id)).scalar()
    return None if rank is None else storage.position_of(view.rank_base, view.rank_gaps or [], int(rank))
