"""Table services: the tables domain's public face, and its table, column and view operations.

Other domains and this package's handlers reach tables through this module: the names in
``__all__`` are the surface (typed, documented, stable); anything else of the package is its own
business. The operations on tables, columns and views are defined here; the loaders, the tenant
check, the row lock and the staleness rule (``access``), the grid's window reads (``windows``),
row writes (``rows``) and batched, undoable cell writes (``editing``) are defined in their own
modules and named here.

Functions take ``workspace`` and ``actor`` explicitly, flush but never commit, and raise the
errors of ``morket.core.errors``. Objects passed in (a table, a view) are checked against the
workspace, so a caller holding another workspace's object gets NotFound, as a lookup would.
Views whose order depends on changed cells are marked stale and rebuilt on their next read.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy import select

from morket.core.db import utcnow
from morket.core.errors import Conflict, NotFound, ValidationFailed
from morket.core.types import Actor, Workspace
from morket.extensions import db
from morket.tables import lookups, storage
from morket.tables.access import (
    check_owned,
    find_column,
    fresh_orders_exist,
    get_table_and_view_or_404,
    get_table_or_404,
    get_view_or_404,
    list_newest_tables,
    list_tables,
    list_views,
    lock_loaded_table,
    lock_rows,
    mark_views_stale,
    next_pos,
    note_no_fresh_orders,
)
from morket.tables.cells import CellError, check_characters
from morket.tables.column_configs import clean_config
from morket.tables.editing import apply_grid_change, cell_steps, read_cells, row_snapshots, write_cells
from morket.tables.filters import validate_filters, validate_sort
from morket.tables.live import announce as announce_change
from morket.tables.models import COLUMN_TYPES, Column, Table, View
from morket.tables.rows import (
    MAX_DELETE_ROWS,
    MAX_INSERT_ROWS,
    MAX_REPORTED_CELL_ERRORS,
    delete_rows,
    insert_rows,
    update_cell,
)
from morket.tables.windows import (
    MAX_WINDOW,
    ColumnMeta,
    TableMeta,
    ViewMeta,
    Window,
    WindowRow,
    count_rows,
    ensure_view_order,
    get_row,
    member_and_window_source,
    read_grid_window,
    read_window,
    search_rows,
    window_source_or_404,
    window_statement,
)

__all__ = [
    # loaders and ownership
    "get_table_or_404",
    "get_table_and_view_or_404",
    "get_view_or_404",
    "list_newest_tables",
    "list_tables",
    "list_views",
    "check_owned",
    "find_column",
    # the row lock and stale views
    "lock_rows",
    "lock_loaded_table",
    "next_pos",
    "mark_views_stale",
    "fresh_orders_exist",
    "note_no_fresh_orders",
    # window reads
    "MAX_WINDOW",
    "WindowRow",
    "ColumnMeta",
    "TableMeta",
    "ViewMeta",
    "Window",
    "read_window",
    "read_grid_window",
    "window_source_or_404",
    "member_and_window_source",
    "window_statement",
    "ensure_view_order",
    "get_row",
    "count_rows",
    "search_rows",
    # row writes
    "MAX_INSERT_ROWS",
    "MAX_DELETE_ROWS",
    "MAX_REPORTED_CELL_ERRORS",
    "insert_rows",
    "update_cell",
    "delete_rows",
    "announce_change",
    # cells in batches, with their undo steps
    "read_cells",
    "cell_steps",
    "write_cells",
    "row_snapshots",
    "apply_grid_change",
    # lookup columns
    "refresh_lookups",
    # tables, columns and views
    "create_table",
    "rename_table",
    "delete_table",
    "add_column",
    "rename_column",
    "delete_column",
    "restore_column",
    "create_view",
    "update_view",
    "delete_view",
]

MAX_RETAINED_DELETED_COLUMNS = 50
# How long a table delete waits for the requests writing to it before it answers Conflict.
DELETE_LOCK_TIMEOUT = "5s"
LOCK_NOT_AVAILABLE = "55P03"


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


def create_table(
    workspace: Workspace,
    actor: Actor | None,
    name: str,
    *,
    folder: str | None = None,
    columns: Sequence[Mapping[str, Any]] = (),
) -> Table:
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


def rename_table(workspace: Workspace, actor: Actor | None, table: Table, name: str) -> Table:
    """Rename a table."""
    check_owned(workspace, table)
    table.name = _clean_name(name, "Table")
    db.session.flush()
    return table


def delete_table(workspace: Workspace, actor: Actor | None, table: Table) -> None:
    """Delete a table, its rows, columns, views and view orders.

    The table's row lock comes first (see ``get_table_or_404``): a second delete waits and then
    finds nothing (NotFound); writers in progress are waited for at most ``DELETE_LOCK_TIMEOUT``,
    after which the delete answers Conflict and leaves the table as it was.
    """
    check_owned(workspace, table)
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
    table_id = table.id
    db.session.delete(table)
    db.session.flush()
    lookups.table_deleted(workspace, table_id)


# --- columns ---------------------------------------------------------------------------------------


def add_column(
    workspace: Workspace,
    actor: Actor | None,
    table: Table,
    name: str,
    column_type: str,
    *,
    config: Mapping[str, Any] | None = None,
) -> Column:
    """Add a typed column at the end (an ALTER TABLE, a catalogue change)."""
    check_owned(workspace, table)
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


def rename_column(workspace: Workspace, actor: Actor | None, table: Table, column_id: int, name: str) -> Column:
    """Rename a column (the physical name never changes)."""
    check_owned(workspace, table)
    column = find_column(table, column_id)
    name = _clean_name(name, "Column")
    if any(c.name.casefold() == name.casefold() and c.id != column.id for c in table.live_columns):
        raise ValidationFailed(f"There is already a column named “{name}”.", fields={"name": ["already used"]})
    column.name = name
    db.session.flush()
    return column


def delete_column(workspace: Workspace, actor: Actor | None, table: Table, column_id: int) -> Column:
    """Delete a column, keeping its cells so that ``restore_column`` can bring it back."""
    check_owned(workspace, table)
    column = find_column(table, column_id)
    column.deleted_at = utcnow()
    table.version += 1
    mark_views_stale(workspace, table, {column.id})
    deleted = sorted((c for c in table.columns if c.deleted_at is not None), key=lambda c: c.deleted_at)
    for old in deleted[: max(0, len(deleted) - MAX_RETAINED_DELETED_COLUMNS)]:
        storage.drop_physical_column(table, old)
        table.columns.remove(old)
    db.session.flush()
    # Lookups that read the column are now broken (with the reason); a deleted lookup frees its indexes.
    lookups.sources_changed(workspace, table)
    if column.type == "lookup":
        lookups.prune_indexes(workspace.id, {table.id, int((column.config or {}).get("source_table_id") or 0)})
    return column


def restore_column(workspace: Workspace, actor: Actor | None, table: Table, column_id: int) -> Column:
    """Bring back a deleted column with its cells."""
    check_owned(workspace, table)
    column = find_column(table, column_id, deleted=True)
    if len(table.live_columns) >= storage.MAX_USER_COLUMNS:
        raise ValidationFailed(f"A table holds at most {storage.MAX_USER_COLUMNS} columns.")
    if any(c.name.casefold() == column.name.casefold() for c in table.live_columns):
        column.name = f"{column.name} (restored)"[:120]
    # The table changed while the column was away: its settings (a formula's references) must still hold.
    column.config = clean_config(table, column.type, column.config, column_id=column.id)
    column.deleted_at = None
    table.version += 1
    mark_views_stale(workspace, table, {column.id})
    db.session.flush()
    if column.type == "lookup":
        lookups.fill_column(workspace, column)
    lookups.sources_changed(workspace, table)
    return column


def refresh_lookups(workspace: Workspace, table: Table) -> int:
    """Recompute every lookup of ``table`` and every lookup that reads it (after a bulk load); return cells written."""
    check_owned(workspace, table)
    return lookups.refresh_all(workspace, table)


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


def create_view(workspace: Workspace, actor: Actor | None, table: Table, name: str, **fields: Any) -> View:
    """Create a saved view; its order is built on first read."""
    check_owned(workspace, table)
    clean = _clean_view_fields(table, {"name": name, **fields})
    view = View(workspace_id=workspace.id, table_id=table.id, order_stale=True, **clean)
    db.session.add(view)
    db.session.flush()
    return view


def update_view(workspace: Workspace, actor: Actor | None, table: Table, view: View, **fields: Any) -> View:
    """Change a view; a new sort or filter makes its order rebuild on the next read."""
    check_owned(workspace, table, view)
    if view.table_id != table.id:
        raise NotFound("That view does not exist.")
    clean = _clean_view_fields(table, fields)
    reorder = any(k in clean and clean[k] != getattr(view, k) for k in ("sort", "filters"))
    for key, value in clean.items():
        setattr(view, key, value)
    if reorder:
        # The previous order is of other keys: dropped, so no read takes its ranks for the new sort's.
        view.order_stale = True
        view.order_size, view.rank_base, view.rank_gaps = None, 1, []
    db.session.flush()  # the view's row first, as an order build's swap locks it (no lock-order cycle)
    if reorder:
        storage.drop_order(table.id, view.id)
    return view


def delete_view(workspace: Workspace, actor: Actor | None, table: Table, view: View) -> None:
    """Delete a view and its materialised order."""
    check_owned(workspace, table, view)
    storage.drop_order(table.id, view.id)
    db.session.delete(view)
    db.session.flush()
