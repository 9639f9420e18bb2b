"""Table services: every write and every real read of tables, columns, rows and views.

Functions take ``workspace`` and ``actor`` explicitly, flush but never commit, and raise the
errors of ``morket.core.errors``. Objects passed in (a table, a view) are checked against the
workspace, so a caller holding another workspace's object gets NotFound, as a lookup would.
Views whose order depends on changed cells are marked stale and rebuilt on their next read.
"""

from __future__ import annotations

import json
import random
from collections import OrderedDict
from collections.abc import Iterable, Mapping, Sequence
from contextlib import suppress
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any, Literal, NamedTuple

import sqlalchemy as sa
from sqlalchemy import select
from sqlalchemy.orm import joinedload

from morket.core.db import driver_rows, utcnow
from morket.core.errors import Conflict, NotFound, ValidationFailed
from morket.core.tenancy import MEMBER_COLUMNS, MEMBER_FROM, MEMBER_WHERE, member_params, transaction_for_writes
from morket.extensions import db
from morket.tables import storage
from morket.tables.cells import CellError, check_characters, parse_cell, select_options
from morket.tables.column_configs import clean_config
from morket.tables.filters import TEXT_LIKE, compile_filters, compile_sort, validate_filters, validate_sort
from morket.tables.models import COLUMN_TYPES, Column, Table, View

MAX_WINDOW = 500
MAX_INSERT_ROWS = 10_000
MAX_DELETE_ROWS = 10_000
MAX_RETAINED_DELETED_COLUMNS = 50
MAX_REPORTED_CELL_ERRORS = 50
# How long a table delete waits for the requests writing to it before it answers Conflict.
DELETE_LOCK_TIMEOUT = "5s"
LOCK_NOT_AVAILABLE = "55P03"


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


# --- loaders ---------------------------------------------------------------------------------------


def get_table_or_404(workspace, table_id: int, *, lock: Literal["share", "update"] | None = None) -> Table:  # noqa: ANN001
    """Return the workspace's table ``table_id`` with its columns, or raise NotFound.

    A request that writes takes the table's row lock here, before it touches the rows table:
    ``share`` for cell edits and views (many at once), ``update`` for what changes the table's own
    row (rows added or removed, columns, the name). ``delete_table`` takes it ``FOR UPDATE`` before
    it drops anything, so a writer waits for a delete in progress and then finds no table (404),
    and a delete waits for the writers holding it; everyone takes it first, so none waits in a circle.
    """
    statement = (
        select(Table).where(Table.id == table_id, Table.workspace_id == workspace.id).options(joinedload(Table.columns))
    )
    if lock is not None:
        statement = statement.with_for_update(read=lock == "share", of=Table).execution_options(populate_existing=True)
    table = db.session.scalars(statement).unique().one_or_none()
    if table is None:
        raise NotFound("That table does not exist.")
    return table


def get_table_and_view_or_404(workspace, table_id: int, view_id: int | None) -> tuple[Table, View | None]:  # noqa: ANN001
    """Return the workspace's table with its columns and its view ``view_id`` (else its first view).

    One statement, for the grid's window reads. Raises NotFound for a missing table, or for a
    ``view_id`` that is not one of the table's views.
    """
    if view_id is None:
        first = select(sa.func.min(View.id)).where(View.table_id == Table.id).correlate(Table).scalar_subquery()
        which = View.id == first
    else:
        which = View.id == view_id
    found = (
        db.session.execute(
            select(Table, View)
            .outerjoin(View, sa.and_(View.table_id == Table.id, View.workspace_id == workspace.id, which))
            .where(Table.id == table_id, Table.workspace_id == workspace.id)
            .options(joinedload(Table.columns))
        )
        .unique()
        .one_or_none()
    )
    if found is None:
        raise NotFound("That table does not exist.")
    table, view = found
    if view is None and view_id is not None:
        raise NotFound("That view does not exist.")
    return table, view


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
# The same with the membership, its user and workspace in front (see ``core/tenancy.py``): the
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


def window_source_or_404(workspace, table_id: int, view_id: int | None) -> tuple[TableMeta, ViewMeta | None]:  # noqa: ANN001
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


def read_grid_window(  # noqa: PLR0913
    workspace,  # noqa: ANN001
    actor,  # noqa: ANN001
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
    start, limit = _window_bounds(start, limit)
    table, view = source if source is not None else window_source_or_404(workspace, table_id, view_id)
    ordered = view is not None and view.is_ordered
    if not (ordered and view.order_stale):
        rows = _fetch_window(table, view if ordered else None, start, limit)
        if rows or not ordered or start >= (view.order_size or 0):
            total = (view.order_size or 0) if ordered else table.row_count
            return Window(table, view, rows, total, False)
    transaction_for_writes()
    live_table, live_view = get_table_and_view_or_404(workspace, table_id, view.id)
    rows = read_window(workspace, actor, live_table, live_view, start, limit)
    return Window(live_table, live_view, rows, count_rows(workspace, actor, live_table, live_view), True)


def _fetch_window(table: Table | TableMeta, view: View | ViewMeta | None, start: int, limit: int) -> list[WindowRow]:
    """Run the window's precompiled SELECT on the session's connection (one statement)."""
    store = storage.storage_for(table)
    sql = store.window_sql(table.id, view.id if view is not None else None)
    keys = _window_keys(table, view, start, limit)
    result = driver_rows(db.session.connection(), sql, keys)
    return [WindowRow(r[0], start + i, r[1:-1], r[-1]) for i, r in enumerate(result)]


def list_tables(workspace) -> list[Table]:  # noqa: ANN001
    """Return the workspace's tables, grouped by folder then by name."""
    return list(
        db.session.scalars(
            select(Table).where(Table.workspace_id == workspace.id).order_by(Table.folder.nulls_first(), Table.name)
        )
    )


def get_view_or_404(workspace, table: Table, view_id: int) -> View:  # noqa: ANN001
    """Return the table's view ``view_id``, or raise NotFound."""
    _check(workspace, table)
    view = db.session.scalars(
        select(View).where(View.id == view_id, View.table_id == table.id, View.workspace_id == workspace.id)
    ).one_or_none()
    if view is None:
        raise NotFound("That view does not exist.")
    return view


def list_views(workspace, table: Table) -> list[View]:  # noqa: ANN001
    """Return the table's saved views, oldest first."""
    _check(workspace, table)
    return list(
        db.session.scalars(
            select(View).where(View.table_id == table.id, View.workspace_id == workspace.id).order_by(View.id)
        )
    )


def _check(workspace, *objects: Any) -> None:  # noqa: ANN001
    for obj in objects:
        if obj is not None and obj.workspace_id != workspace.id:
            raise NotFound("That table does not exist.")


def _column(table: Table, column_id: int, *, deleted: bool = False) -> Column:
    for column in table.columns:
        if column.id == column_id and (column.deleted_at is not None) == deleted:
            return column
    raise NotFound("That column does not exist.")


def _clean_name(raw: Any, what: str) -> str:
    name = raw.strip() if isinstance(raw, str) else ""
    if not name or len(name) > 120:
        raise ValidationFailed(f"{what} name must be 1 to 120 characters.", fields={"name": ["1 to 120 characters"]})
    try:
        check_characters(name)
    except CellError as exc:
        raise ValidationFailed(f"{what} name: {exc}", fields={"name": [str(exc)]}) from exc
    return name


# --- tables ----------------------------------------------------------------------------------------


def create_table(workspace, actor, name: str, *, folder: str | None = None, columns: Sequence[Mapping] = ()) -> Table:  # noqa: ANN001
    """Create a table with its physical storage, optional columns and a default view."""
    folder = folder.strip() if isinstance(folder, str) and folder.strip() else None
    if folder is not None and len(folder) > 120:
        raise ValidationFailed("Folder name is at most 120 characters.", fields={"folder": ["too long"]})
    table = Table(
        workspace_id=workspace.id,
        name=_clean_name(name, "Table"),
        folder=folder,
        created_by_id=getattr(actor, "id", None),
        version=1,
        row_count=0,
    )
    db.session.add(table)
    db.session.flush()
    table.storage_name = storage.rows_name(table.id)
    storage.create_rows_table(table.id)
    db.session.add(View(workspace_id=workspace.id, table_id=table.id, name="Grid view", order_stale=False))
    for spec in columns:
        add_column(workspace, actor, table, spec.get("name"), spec.get("type", "text"), config=spec.get("config"))
    db.session.flush()
    return table


def rename_table(workspace, actor, table: Table, name: str) -> Table:  # noqa: ANN001
    """Rename a table."""
    _check(workspace, table)
    table.name = _clean_name(name, "Table")
    db.session.flush()
    return table


def delete_table(workspace, actor, table: Table) -> None:  # noqa: ANN001
    """Delete a table, its rows, columns, views and view orders.

    The table's row lock comes first (see ``get_table_or_404``): a second delete waits and then
    finds nothing (NotFound); writers in progress are waited for at most ``DELETE_LOCK_TIMEOUT``,
    after which the delete answers Conflict and leaves the table as it was.
    """
    _check(workspace, table)
    db.session.flush()
    previous = db.session.scalar(sa.text("SELECT current_setting('lock_timeout')"))
    db.session.execute(sa.text("SELECT set_config('lock_timeout', :t, true)"), {"t": DELETE_LOCK_TIMEOUT})
    try:
        locked = db.session.scalar(select(Table.id).where(Table.id == table.id).with_for_update())
        if locked is None:
            raise NotFound("That table does not exist.")
        view_ids = db.session.scalars(select(View.id).where(View.table_id == table.id).order_by(View.id)).all()
        storage.drop_table_storage(table.id, view_ids)
    except sa.exc.OperationalError as exc:
        if getattr(exc.orig, "sqlstate", None) != LOCK_NOT_AVAILABLE:
            raise
        raise Conflict("The table is being changed right now; try deleting it again in a moment.") from None
    db.session.execute(sa.text("SELECT set_config('lock_timeout', :t, true)"), {"t": previous})
    db.session.delete(table)
    db.session.flush()


# --- columns ---------------------------------------------------------------------------------------


def _storable(text: str) -> bool:
    try:
        check_characters(text)
    except CellError:
        return False
    return True


def add_column(
    workspace,  # noqa: ANN001
    actor,  # noqa: ANN001
    table: Table,
    name: str,
    column_type: str,
    *,
    config: Mapping[str, Any] | None = None,
) -> Column:
    """Add a typed column at the end (an ALTER TABLE, a catalogue change)."""
    _check(workspace, table)
    if column_type not in COLUMN_TYPES:
        raise ValidationFailed(f"Unknown column type “{column_type}”.", fields={"type": ["unknown type"]})
    name = _clean_name(name, "Column")
    config = clean_config(table, column_type, config)
    live = table.live_columns
    if len(live) >= storage.MAX_USER_COLUMNS:
        raise ValidationFailed(
            f"A table holds at most {storage.MAX_USER_COLUMNS} columns.", fields={"name": ["column limit"]}
        )
    if any(c.name.casefold() == name.casefold() for c in live):
        raise ValidationFailed(f"There is already a column named “{name}”.", fields={"name": ["already used"]})
    column = Column(
        workspace_id=workspace.id,
        table_id=table.id,
        name=name,
        type=column_type,
        config=config,
        position=max((c.position for c in table.columns), default=-1) + 1,
        hidden=False,
        width=180,
    )
    table.columns.append(column)
    db.session.flush()
    storage.add_physical_column(table, column)
    table.version += 1
    db.session.flush()
    return column


def rename_column(workspace, actor, table: Table, column_id: int, name: str) -> Column:  # noqa: ANN001
    """Rename a column (the physical name never changes)."""
    _check(workspace, table)
    column = _column(table, column_id)
    name = _clean_name(name, "Column")
    if any(c.name.casefold() == name.casefold() and c.id != column.id for c in table.live_columns):
        raise ValidationFailed(f"There is already a column named “{name}”.", fields={"name": ["already used"]})
    column.name = name
    db.session.flush()
    return column


def delete_column(workspace, actor, table: Table, column_id: int) -> Column:  # noqa: ANN001
    """Delete a column, keeping its cells so that ``restore_column`` can bring it back."""
    _check(workspace, table)
    column = _column(table, column_id)
    column.deleted_at = utcnow()
    table.version += 1
    _mark_views_stale(workspace, table, {column.id})
    deleted = sorted((c for c in table.columns if c.deleted_at is not None), key=lambda c: c.deleted_at)
    for old in deleted[: max(0, len(deleted) - MAX_RETAINED_DELETED_COLUMNS)]:
        storage.drop_physical_column(table, old)
        table.columns.remove(old)
    db.session.flush()
    return column


def restore_column(workspace, actor, table: Table, column_id: int) -> Column:  # noqa: ANN001
    """Bring back a deleted column with its cells."""
    _check(workspace, table)
    column = _column(table, column_id, deleted=True)
    if len(table.live_columns) >= storage.MAX_USER_COLUMNS:
        raise ValidationFailed(f"A table holds at most {storage.MAX_USER_COLUMNS} columns.")
    if any(c.name.casefold() == column.name.casefold() for c in table.live_columns):
        column.name = f"{column.name} (restored)"[:120]
    # The table changed while the column was away: its settings (a formula's references) must still hold.
    column.config = clean_config(table, column.type, column.config, column_id=column.id)
    column.deleted_at = None
    table.version += 1
    _mark_views_stale(workspace, table, {column.id})
    db.session.flush()
    return column


# --- rows ------------------------------------------------------------------------------------------


def _lock_rows(table: Table) -> None:
    """Serialise writes that add or remove rows of one table, and reload its position keys.

    The table was loaded before the lock: another writer may have changed ``pos_gaps`` and
    ``row_count`` since, so they are read again under it.
    """
    db.session.flush()
    db.session.execute(
        select(Table).where(Table.id == table.id).with_for_update().execution_options(populate_existing=True)
    )


def _next_pos(table: Table) -> int:
    """Return the pos of a row appended now (call under ``_lock_rows``)."""
    _, last = storage.sequence_bounds(table.storage_name, "pos")
    return table.pos_base if last is None else last + 1


def _resolve_key(table: Table, key: Any) -> Column | None:
    live = table.live_columns
    if isinstance(key, int) and not isinstance(key, bool) or isinstance(key, str) and key.isdigit():
        wanted = int(key)
        return next((c for c in live if c.id == wanted), None)
    if isinstance(key, str):
        return next((c for c in live if c.name == key), None) or next(
            (c for c in live if c.name.casefold() == key.casefold()), None
        )
    return None


def _parse_rows(table: Table, rows: Sequence[Mapping[Any, Any]]) -> list[dict[str, Any]]:
    errors: dict[str, list[str]] = {}
    parsed: list[dict[str, Any]] = []
    for index, row in enumerate(rows):
        if not isinstance(row, Mapping):
            errors[f"rows[{index}]"] = ["Each row is an object of column → value."]
            continue
        values: dict[str, Any] = {}
        for key, raw in row.items():
            column = _resolve_key(table, key)
            if column is None:
                errors.setdefault(f"rows[{index}]", []).append(f"No column “{str(key)[:60]}” in this table.")
                continue
            try:
                values[column.storage_name] = parse_cell(column.type, column.config, raw)
            except CellError as exc:
                errors[f"rows[{index}].{column.name}"] = [str(exc)]
        parsed.append(values)
    if errors:
        count = len(errors)
        shown = dict(list(errors.items())[:MAX_REPORTED_CELL_ERRORS])
        first_key, first = next(iter(shown.items()))
        raise ValidationFailed(
            f"{count} cell{'s' if count != 1 else ''} could not be saved; nothing was added "
            f"(first: {first_key}: {first[0]}).",
            fields=shown,
        )
    return parsed


def insert_rows(workspace, actor, table: Table, rows: Sequence[Mapping[Any, Any]]) -> list[int]:  # noqa: ANN001
    """Append rows (column id or name → value), all or nothing; return their ids in order."""
    _check(workspace, table)
    if not isinstance(rows, Sequence) or isinstance(rows, str | bytes) or not rows:
        raise ValidationFailed("Send at least one row.", fields={"rows": ["empty"]})
    if len(rows) > MAX_INSERT_ROWS:
        raise ValidationFailed(f"At most {MAX_INSERT_ROWS:,} rows per call.", fields={"rows": ["too many"]})
    parsed = _parse_rows(table, rows)
    store = storage.storage_for(table)
    _lock_rows(table)
    start = _next_pos(table)
    names = [c.name for c in store.columns.values()]
    params = [{"pos": start + i, **{n: values.get(n) for n in names}} for i, values in enumerate(parsed)]
    ids = (
        db.session.execute(sa.insert(store.rows).returning(store.rows.c.id, sort_by_parameter_order=True), params)
        .scalars()
        .all()
    )
    table.row_count += len(ids)
    _mark_views_stale(workspace, table, None)
    from morket.tables.column_service import refresh_formula_rows

    refresh_formula_rows(workspace, table, ids)
    db.session.flush()
    return list(ids)


def update_cell(workspace, actor, table: Table, row_id: int, column_id: int, raw: Any) -> Any:  # noqa: ANN001
    """Set one cell (last write wins) and return the stored value; bad values raise ValidationFailed."""
    _check(workspace, table)
    column = _column(table, column_id)
    try:
        value = parse_cell(column.type, column.config, raw)
    except CellError as exc:
        raise ValidationFailed(f"{column.name}: {exc}", fields={column.name: [str(exc)]}) from exc
    store = storage.storage_for(table)
    target = store.columns[column.id]
    stored = db.session.execute(
        sa.update(store.rows).where(store.rows.c.id == row_id).values({target.name: value}).returning(target)
    ).first()
    if stored is None:
        raise NotFound("That row no longer exists.")
    _mark_views_stale(workspace, table, {column.id})
    from morket.tables.column_service import refresh_formula_rows

    refresh_formula_rows(workspace, table, [row_id], {column.id})
    return stored[0]


def delete_rows(workspace, actor, table: Table, row_ids: Sequence[int]) -> int:  # noqa: ANN001
    """Delete rows by id, keep positions dense in the table and in every view; return the count."""
    _check(workspace, table)
    ids = sorted({int(i) for i in row_ids})
    if len(ids) > MAX_DELETE_ROWS:
        raise ValidationFailed(f"Delete at most {MAX_DELETE_ROWS:,} rows at once.", fields={"rows": ["too many"]})
    if not ids:
        return 0
    store = storage.storage_for(table)
    _lock_rows(table)
    removed = (
        db.session.execute(sa.delete(store.rows).where(store.rows.c.id.in_(ids)).returning(store.rows.c.pos))
        .scalars()
        .all()
    )
    if not removed:
        return 0
    table.pos_base, table.pos_gaps = storage.record_gaps(
        table.storage_name, "pos", table.pos_base, table.pos_gaps, removed
    )
    locked_views = db.session.scalars(
        select(View)
        .where(View.table_id == table.id, View.workspace_id == workspace.id)
        .order_by(View.id)
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    for view in locked_views:
        if view.is_ordered and not view.order_stale and storage.order_exists(table.id, view.id):
            ranks = storage.remove_from_order(table.id, view.id, ids)
            view.order_size = max(0, (view.order_size or 0) - len(ranks))
            view.rank_base, view.rank_gaps = storage.record_gaps(
                storage.order_name(table.id, view.id), "rank", view.rank_base, view.rank_gaps, ranks
            )
    table.row_count = max(0, table.row_count - len(removed))
    db.session.flush()
    return len(removed)


def _referenced_columns(view: View) -> tuple[set[int], bool]:
    """Return the column ids a view's order depends on, and whether it searches all text."""
    used = {int(key["column_id"]) for key in view.sort or []}
    searches = False
    stack = [view.filters or {}]
    while stack:
        group = stack.pop()
        for cond in group.get("conditions") or []:
            if "conditions" in cond:
                stack.append(cond)
            elif cond.get("operator") == "search":
                searches = True
            else:
                used.add(int(cond["column_id"]))
    return used, searches


def _mark_views_stale(workspace, table: Table, column_ids: set[int] | None) -> None:  # noqa: ANN001
    """Mark ordered views whose order may have changed; None means rows were added."""
    text_columns = {c.id for c in table.columns if c.type in TEXT_LIKE}
    changed = False
    for view in list_views(workspace, table):
        if not view.is_ordered or view.order_stale:
            continue
        used, searches = _referenced_columns(view)
        if column_ids is None or used & column_ids or (searches and column_ids & text_columns):
            view.order_stale = True
            changed = True
    if changed:
        db.session.flush()


# --- views -----------------------------------------------------------------------------------------


def _clean_view_fields(table: Table, fields: Mapping[str, Any]) -> dict[str, Any]:
    live = table.live_columns
    types = {c.id: c.type for c in live}
    configs = {c.id: c.config for c in live}
    clean: dict[str, Any] = {}
    if "name" in fields:
        clean["name"] = _clean_name(fields["name"], "View")
    if "sort" in fields:
        clean["sort"] = validate_sort(fields["sort"], types)
    if "filters" in fields:
        clean["filters"] = validate_filters(fields["filters"], types, configs)
    if "hidden_column_ids" in fields:
        hidden = fields["hidden_column_ids"] or []
        if not isinstance(hidden, list) or any(not isinstance(h, int) or h not in types for h in hidden):
            raise ValidationFailed(
                "Hidden columns must be columns of this table.", fields={"hidden_column_ids": ["bad"]}
            )
        clean["hidden_column_ids"] = sorted(set(hidden))
    if "frozen_count" in fields:
        frozen = fields["frozen_count"]
        if not isinstance(frozen, int) or isinstance(frozen, bool) or not 0 <= frozen <= 10:
            raise ValidationFailed("Freeze 0 to 10 columns.", fields={"frozen_count": ["0 to 10"]})
        clean["frozen_count"] = frozen
    if "widths" in fields:
        widths = fields["widths"] or {}
        if not isinstance(widths, dict) or any(
            not str(k).isdigit() or int(k) not in types or not isinstance(v, int) or not 40 <= v <= 1200
            for k, v in widths.items()
        ):
            raise ValidationFailed("Column widths are 40 to 1,200 pixels.", fields={"widths": ["bad width"]})
        clean["widths"] = {str(k): v for k, v in widths.items()}
    return clean


def create_view(workspace, actor, table: Table, name: str, **fields: Any) -> View:  # noqa: ANN001
    """Create a saved view; its order is built on first read."""
    _check(workspace, table)
    clean = _clean_view_fields(table, {"name": name, **fields})
    view = View(workspace_id=workspace.id, table_id=table.id, order_stale=True, **clean)
    db.session.add(view)
    db.session.flush()
    return view


def update_view(workspace, actor, table: Table, view: View, **fields: Any) -> View:  # noqa: ANN001
    """Change a view; a new sort or filter makes its order rebuild on the next read."""
    _check(workspace, table, view)
    if view.table_id != table.id:
        raise NotFound("That view does not exist.")
    clean = _clean_view_fields(table, fields)
    reorder = any(k in clean and clean[k] != getattr(view, k) for k in ("sort", "filters"))
    for key, value in clean.items():
        setattr(view, key, value)
    if reorder:
        view.order_stale = True
        if not view.is_ordered:
            storage.drop_order(table.id, view.id)
    db.session.flush()
    return view


def delete_view(workspace, actor, table: Table, view: View) -> None:  # noqa: ANN001
    """Delete a view and its materialised order."""
    _check(workspace, table, view)
    storage.drop_order(table.id, view.id)
    db.session.delete(view)
    db.session.flush()


def ensure_view_order(workspace, table: Table, view: View) -> None:  # noqa: ANN001
    """Rebuild the view's order table if it is stale (one builder at a time per view)."""
    if not view.is_ordered or not view.order_stale:
        return
    db.session.flush()
    db.session.refresh(view, with_for_update=True)
    if not view.order_stale:
        return
    store = storage.storage_for(table)
    view.order_size = storage.build_order(
        table.id, view.id, compile_sort(view.sort or [], store), compile_filters(view.filters or {}, store), store.rows
    )
    view.rank_base, view.rank_gaps = 1, []
    view.order_stale = False
    db.session.flush()


# --- reads -----------------------------------------------------------------------------------------


def _window_bounds(start: int, limit: int) -> tuple[int, int]:
    if isinstance(start, bool) or not isinstance(start, int) or start < 0:
        raise ValidationFailed("The window starts at a position of 0 or more.", fields={"start": ["0 or more"]})
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_WINDOW:
        raise ValidationFailed(f"A window holds 1 to {MAX_WINDOW} rows.", fields={"limit": [f"1 to {MAX_WINDOW}"]})
    return start, limit


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


def read_window(workspace, actor, table: Table, view: View | None, start: int, limit: int) -> list[WindowRow]:  # noqa: ANN001
    """Return the rows at positions [start, start + limit) of the view (or the default order)."""
    _check(workspace, table, view)
    start, limit = _window_bounds(start, limit)
    ordered = view is not None and view.is_ordered
    if ordered:
        ensure_view_order(workspace, table, view)
    window = _fetch_window(table, view if ordered else None, start, limit)
    if not window and ordered and start < (view.order_size or 0):
        _rebuild_lost_order(workspace, table, view)
        window = _fetch_window(table, view, start, limit)
    return window


def _rebuild_lost_order(workspace, table: Table, view: View) -> None:  # noqa: ANN001
    """Rebuild an order that a database crash emptied (order tables are unlogged)."""
    view.order_stale = True
    ensure_view_order(workspace, table, view)


def get_row(workspace, actor, table: Table, row_id: int) -> WindowRow:  # noqa: ANN001
    """Return one row with every live cell (its position is in the default order), or raise NotFound."""
    _check(workspace, table)
    store = storage.storage_for(table)
    rows = store.rows
    found = db.session.execute(
        select(rows.c.id, rows.c.pos, *store.columns.values(), rows.c.cell_state).where(rows.c.id == row_id)
    ).first()
    if found is None:
        raise NotFound("That row no longer exists.")
    position = storage.position_of(table.pos_base, table.pos_gaps, found[1])
    return WindowRow(found[0], position, tuple(found[2:-1]), found[-1])


def count_rows(workspace, actor, table: Table, view: View | None = None) -> int:  # noqa: ANN001
    """Return the number of rows in the table, or in the view after its filters (no scan: kept counts)."""
    _check(workspace, table, view)
    if view is None or not view.is_ordered:
        return table.row_count
    ensure_view_order(workspace, table, view)
    return view.order_size or 0


def search_rows(workspace, actor, table: Table, query: str, *, limit: int = 100) -> tuple[list[WindowRow], int]:  # noqa: ANN001
    """Return the first rows (default order) whose text columns contain ``query``, and the match count."""
    _check(workspace, table)
    if not isinstance(query, str) or not query.strip() or len(query) > 200 or not _storable(query):
        raise ValidationFailed("Search for 1 to 200 characters of text.", fields={"q": ["1 to 200 characters"]})
    _, limit = _window_bounds(0, limit)
    from morket.tables.filters import search_clause

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


# --- bulk load -------------------------------------------------------------------------------------

_WORDS = (
    "acme",
    "globex",
    "initech",
    "umbrella",
    "hooli",
    "stark",
    "wayne",
    "wonka",
    "tyrell",
    "cyberdyne",
    "soylent",
    "aperture",
    "vandelay",
    "massive",
    "dynamic",
    "pied",
    "piper",
    "oscorp",
    "nakatomi",
    "gringotts",
    "monarch",
    "zorg",
    "duff",
    "krusty",
)


def _synthetic(column: Column, rng: random.Random, i: int) -> Any:
    kind = column.type
    word = _WORDS[rng.randrange(len(_WORDS))]
    if kind in ("text", "ai"):
        return f"{word.title()} {rng.randrange(100_000)}"
    if kind == "long_text":
        return " ".join(_WORDS[rng.randrange(len(_WORDS))] for _ in range(12))
    if kind == "number":
        return rng.randrange(1, 100_000)
    if kind == "currency":
        return f"{rng.randrange(0, 10_000_000)}.{rng.randrange(100):02d}"
    if kind == "percent":
        return f"{rng.randrange(0, 10_000) / 100:.2f}"
    if kind == "date":
        return date(2000, 1, 1) + timedelta(days=rng.randrange(9000))
    if kind == "datetime":
        return datetime(2020, 1, 1, tzinfo=UTC) + timedelta(seconds=rng.randrange(200_000_000))
    if kind == "checkbox":
        return rng.random() < 0.5
    if kind == "single_select":
        options = select_options(column.config)
        return options[rng.randrange(len(options))] if options else None
    if kind == "multi_select":
        options = select_options(column.config)
        return [o for o in options if rng.random() < 0.3] or None
    if kind == "email":
        return f"person{i}@{word}.com"
    if kind == "url":
        return f"https://{word}.com/p/{i}"
    if kind == "phone":
        return f"+1 555 {rng.randrange(1_000_000):07d}"
    if kind == "domain":
        return f"{word}{rng.randrange(1000)}.com"
    if kind in ("json", "enrichment"):
        return json.dumps({"n": i, "tag": word})
    return None


def seed_rows(
    workspace, actor, table: Table, n: int, *, seed: int = 0, values: Iterable[Sequence[Any]] | None = None
) -> int:  # noqa: ANN001
    """Append ``n`` rows fast with COPY: synthetic values per column type, or ``values`` (one tuple a row).

    ``values`` rows give a stored value per live column in order and bypass cell parsing: it is
    for benches and tests that load trusted data.
    """
    _check(workspace, table)
    if n < 0:
        raise ValidationFailed("Seed zero or more rows.")
    live = table.live_columns
    _lock_rows(table)
    start = _next_pos(table)
    names = ", ".join(["pos", *(c.storage_name for c in live)])
    rng = random.Random(seed)
    source = values if values is not None else ([_synthetic(c, rng, start + i) for c in live] for i in range(n))
    raw = db.session.connection().connection.driver_connection
    written = 0
    with raw.cursor() as cursor, cursor.copy(f"COPY ut.{table.storage_name} ({names}) FROM STDIN") as copy:
        for row in source:
            if written == n:
                break
            copy.write_row((start + written, *row))
            written += 1
    table.row_count += written
    _mark_views_stale(workspace, table, None)
    db.session.flush()
    return written
