"""Row writes: append rows, set a cell, delete rows, keeping positions dense in the table and its views.

Every function takes ``workspace`` and ``actor``, checks the table belongs to the workspace,
flushes but never commits. Writes that add or remove rows run under the table's row lock
(``access.lock_rows``); each write recomputes the formulas of the rows it touched and marks stale
the views whose order it may have changed. The undoable grid edits (``morket.tables.editing``)
are built on these.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy import select

from morket.core.errors import NotFound, ValidationFailed
from morket.core.types import Actor, Workspace
from morket.extensions import db
from morket.tables import hooks, lookups, storage
from morket.tables.access import check_owned, find_column, lock_rows, mark_views_stale, next_pos
from morket.tables.cells import CellError, parse_cell
from morket.tables.formula_rows import refresh_formula_rows
from morket.tables.models import Column, Table, View

MAX_INSERT_ROWS = 10_000
MAX_DELETE_ROWS = 10_000
MAX_REPORTED_CELL_ERRORS = 50


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
    # Each key is resolved to its column once per call, not once per cell.
    # (Keyed by type too: True and 1.0 equal 1 but name no column.)
    resolved: dict[tuple[type, Any], tuple[Column, str, str, dict[str, Any]] | None] = {}
    for index, row in enumerate(rows):
        if not isinstance(row, Mapping):
            errors[f"rows[{index}]"] = ["Each row is an object of column → value."]
            continue
        values: dict[str, Any] = {}
        for key, raw in row.items():
            try:
                found = resolved[type(key), key]
            except KeyError:
                column = _resolve_key(table, key)
                found = resolved[type(key), key] = (
                    None if column is None else (column, column.storage_name, column.type, column.config)
                )
            except TypeError:  # an unhashable key names no column
                found = None
            if found is None:
                errors.setdefault(f"rows[{index}]", []).append(f"No column “{str(key)[:60]}” in this table.")
                continue
            column, storage_name, column_type, config = found
            try:
                values[storage_name] = parse_cell(column_type, config, raw)
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


def insert_rows(
    workspace: Workspace, actor: Actor | None, table: Table, rows: Sequence[Mapping[Any, Any]]
) -> list[int]:
    """Append rows (column id or name → value), all or nothing; return their ids in order."""
    check_owned(workspace, table)
    if not isinstance(rows, Sequence) or isinstance(rows, str | bytes) or not rows:
        raise ValidationFailed("Send at least one row.", fields={"rows": ["empty"]})
    if len(rows) > MAX_INSERT_ROWS:
        raise ValidationFailed(f"At most {MAX_INSERT_ROWS:,} rows per call.", fields={"rows": ["too many"]})
    parsed = _parse_rows(table, rows)
    store = storage.storage_for(table)
    lock_rows(table)
    start = next_pos(table)
    names = [c.name for c in store.columns.values()]
    params = [{"pos": start + i, **{n: values.get(n) for n in names}} for i, values in enumerate(parsed)]
    ids = (
        db.session.execute(sa.insert(store.rows).returning(store.rows.c.id, sort_by_parameter_order=True), params)
        .scalars()
        .all()
    )
    table.row_count += len(ids)
    mark_views_stale(workspace, table, None)
    lookups.refresh_after_write(workspace, table, ids)
    refresh_formula_rows(workspace, table, ids)
    hooks.row_events(table, "created", ids)
    db.session.flush()
    return list(ids)


def update_cell(workspace: Workspace, actor: Actor | None, table: Table, row_id: int, column_id: int, raw: Any) -> Any:
    """Set one cell (last write wins) and return the stored value; bad values raise ValidationFailed."""
    check_owned(workspace, table)
    column = find_column(table, column_id)
    try:
        value = parse_cell(column.type, column.config, raw)
    except CellError as exc:
        raise ValidationFailed(f"{column.name}: {exc}", fields={column.name: [str(exc)]}) from exc
    store = storage.storage_for(table)
    target = store.columns[column.id]
    before = lookups.source_keys(table, [row_id], {column.id})
    stored = db.session.execute(
        sa.update(store.rows).where(store.rows.c.id == row_id).values({target.name: value}).returning(target)
    ).first()
    if stored is None:
        raise NotFound("That row no longer exists.")
    mark_views_stale(workspace, table, {column.id})
    lookups.refresh_after_write(workspace, table, [row_id], {column.id}, before)
    refresh_formula_rows(workspace, table, [row_id], {column.id, *lookups.lookup_ids(table)})
    hooks.row_events(table, "updated", [row_id])
    return stored[0]


def delete_rows(workspace: Workspace, actor: Actor | None, table: Table, row_ids: Sequence[int]) -> int:
    """Delete rows by id, keep positions dense in the table and in every view; return the count."""
    check_owned(workspace, table)
    ids = sorted({int(i) for i in row_ids})
    if len(ids) > MAX_DELETE_ROWS:
        raise ValidationFailed(f"Delete at most {MAX_DELETE_ROWS:,} rows at once.", fields={"rows": ["too many"]})
    if not ids:
        return 0
    store = storage.storage_for(table)
    lock_rows(table)
    before = lookups.source_keys(table, ids)
    deleted = db.session.execute(
        sa.delete(store.rows).where(store.rows.c.id.in_(ids)).returning(store.rows.c.id, store.rows.c.pos)
    ).all()
    if not deleted:
        return 0
    removed = [pos for _, pos in deleted]
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
    lookups.refresh_after_write(workspace, table, [], None, before)
    hooks.row_events(table, "deleted", sorted(row_id for row_id, _ in deleted))  # only rows that existed
    db.session.flush()
    return len(removed)
