"""Row writes: append rows, set a cell, delete rows, keeping positions dense in the table and its views.

Every function takes ``workspace`` and ``actor``, checks the table belongs to the workspace,
flushes but never commits. Writes that add or remove rows run under the table's row lock
(``access.lock_rows``); each write recomputes the formulas of the rows it touched and marks stale
the views whose order it may have changed. The undoable grid edits (``morket.tables.editing``)
are built on these.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from datetime import date
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from sqlalchemy import select
from sqlalchemy.orm.attributes import set_committed_value

from morket.core.errors import NotFound, ValidationFailed
from morket.core.jobs import enqueue_after_commit
from morket.core.types import Actor, Workspace
from morket.extensions import db
from morket.tables import hooks, lookups, storage
from morket.tables.access import check_owned, find_column, lock_rows, mark_views_stale, next_pos
from morket.tables.cells import CellError, cell_parser, parse_cell
from morket.tables.formula_rows import refresh_formula_rows
from morket.tables.models import USER_SCHEMA, Column, Table, View

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
    resolved: dict[tuple[type, Any], tuple[Column, str, Callable[[Any], Any]] | None] = {}
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
                    None if column is None else (column, column.storage_name, cell_parser(column.type, column.config))
                )
            except TypeError:  # an unhashable key names no column
                found = None
            if found is None:
                errors.setdefault(f"rows[{index}]", []).append(f"No column “{str(key)[:60]}” in this table.")
                continue
            column, storage_name, parse = found
            try:
                values[storage_name] = parse(raw)
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


# Column types whose values go in through one JSON record set (arrays and JSON columns do not).
_UNNEST_TYPES = frozenset({"text", "numeric", "date", "timestamptz", "boolean"})


# A caller's own write sent with the insert (SQL text and its parameters, named apart from the insert's).
Also = tuple[str, dict[str, Any]]


def _json_value(value: Any) -> str:
    """A cell value JSON cannot hold (Decimal, date, datetime) as its text, which the column's type reads."""
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, date):  # datetime too
        return value.isoformat()
    raise TypeError(f"{type(value).__name__} does not go in as JSON")


def _insert_unnest(
    table: Table, store: storage.Storage, parsed: list[dict[str, Any]], also: Also | None = None
) -> list[int] | None:
    """Insert ``parsed`` with one short statement: the rows as one JSON parameter, read in order as a
    typed record set, the positions numbered after the table's last by the statement itself (under
    the row lock).

    The table's ``row_count`` is counted by the same statement. One round trip and one parameter
    whatever the row count, and the same text for every call on a table, so the driver parses and
    prepares it once (a multi-row VALUES is a new, long text each time; one typed array per column
    costs the driver a conversion per value). None when a column's type cannot go in this way
    (multi-select, JSON): the caller inserts row by row. ``also`` rides in the same statement as one
    more data-modifying CTE.
    """
    columns = [(store.columns[cid].name, storage.sql_type(kind)) for cid, kind in store.types.items()]
    if not columns or any(kind not in _UNNEST_TYPES for _, kind in columns):
        return None
    quote = db.session.get_bind().dialect.identifier_preparer.quote
    relation = f"{quote(USER_SCHEMA)}.{quote(table.storage_name)}"
    names = [quote(name) for name, _ in columns]
    record = ", ".join(f"{quote(name)} {kind}" for name, kind in columns)
    statement = sa.text(
        f"WITH added AS (INSERT INTO {relation} (pos, {', '.join(names)}) "  # noqa: S608 - generated, quoted names
        f"SELECT coalesce((SELECT max(pos) FROM {relation}), :base - 1) + u.n, {', '.join('u.' + n for n in names)} "
        f"FROM ROWS FROM (json_to_recordset(CAST(:rows AS json)) AS ({record})) "
        f"WITH ORDINALITY AS u({', '.join(names)}, n) RETURNING id, pos), "
        "counted AS (UPDATE tables SET row_count = row_count + (SELECT count(*) FROM added) WHERE id = :table_id "
        "RETURNING row_count) "
        + (f", also AS ({also[0]}) " if also else "")
        + "SELECT id, pos, (SELECT row_count FROM counted) FROM added"
    )
    # The parsed rows are keyed by storage name already: a key left out reads as NULL.
    try:
        rows = json.dumps(parsed, default=_json_value, ensure_ascii=False, allow_nan=False)
    except (TypeError, ValueError):  # a value JSON cannot carry: the caller inserts row by row
        return None
    params: dict[str, Any] = {"base": table.pos_base, "table_id": table.id, "rows": rows, **(also[1] if also else {})}
    db.session.flush()  # the table's row is written below, outside the unit of work
    inserted = db.session.execute(statement, params).all()
    if inserted:
        set_committed_value(table, "row_count", inserted[0][2])
    return [row_id for row_id, _, _ in sorted(inserted, key=lambda r: r[1])]


def insert_rows(
    workspace: Workspace,
    actor: Actor | None,
    table: Table,
    rows: Sequence[Mapping[Any, Any]],
    *,
    also: Also | None = None,
) -> list[int]:
    """Append rows (column id or name → value), all or nothing; return their ids in order.

    ``also``: a caller's own data-modifying statement (no RETURNING read back) written in the same
    round trip as the rows when they go in as arrays, else right after them.
    """
    check_owned(workspace, table)
    if not isinstance(rows, Sequence) or isinstance(rows, str | bytes) or not rows:
        raise ValidationFailed("Send at least one row.", fields={"rows": ["empty"]})
    if len(rows) > MAX_INSERT_ROWS:
        raise ValidationFailed(f"At most {MAX_INSERT_ROWS:,} rows per call.", fields={"rows": ["too many"]})
    parsed = _parse_rows(table, rows)
    store = storage.storage_for(table)
    lock_rows(table)
    ids = _insert_unnest(table, store, parsed, also)  # counts the rows in the table's row_count too
    if ids is None:
        start = next_pos(table)
        names = [c.name for c in store.columns.values()]
        params = [{"pos": start + i, **{n: values.get(n) for n in names}} for i, values in enumerate(parsed)]
        ids = (
            db.session.execute(sa.insert(store.rows).returning(store.rows.c.id, sort_by_parameter_order=True), params)
            .scalars()
            .all()
        )
        table.row_count += len(ids)
        if also:
            db.session.execute(sa.text(also[0]), also[1])
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


def _compact_later(table: Table, gaps: Sequence[int], view: View | None = None) -> None:
    """Queue the closing of a table's (or a view order's) gaps once there are more than ``GAP_LIMIT``.

    The delete itself never renumbers: the job moves rows in short steps (``storage.compact_step``).
    """
    if len(gaps) > storage.GAP_LIMIT:
        view_id = 0 if view is None else view.id
        enqueue_after_commit(
            "morket.tables.tasks.compact_keys", table.id, view_id, job_id=f"compact-{table.id}-{view_id}"
        )


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
    # The last key before the delete comes back with it (the subquery sees the rows as they were):
    # when the last row survives, the gaps need no second look at the table's bounds.
    last_before = sa.select(sa.func.max(store.rows.c.pos)).scalar_subquery()
    deleted = db.session.execute(
        sa.delete(store.rows).where(store.rows.c.id.in_(ids)).returning(store.rows.c.id, store.rows.c.pos, last_before)
    ).all()
    if not deleted:
        return 0
    removed = [row[1] for row in deleted]
    last = deleted[0][2] if max(removed) < deleted[0][2] else None
    table.pos_base, table.pos_gaps = storage.record_gaps(
        table.storage_name, "pos", table.pos_base, table.pos_gaps, removed, last=last
    )
    table.row_count = max(0, table.row_count - len(removed))  # one UPDATE of the table's row with the gaps
    _compact_later(table, table.pos_gaps)
    locked_views = db.session.scalars(
        select(View)
        .where(View.table_id == table.id, View.workspace_id == workspace.id)
        .order_by(View.id)
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    for view in locked_views:
        if view.is_ordered and not view.order_stale and storage.order_exists(table.id, view.id):
            ranks, last_rank = storage.remove_from_order(table.id, view.id, ids)
            if not ranks:  # none of the rows was in this view
                continue
            view.order_size = max(0, (view.order_size or 0) - len(ranks))
            kept_last = last_rank if max(ranks) < (last_rank or 0) else None
            view.rank_base, view.rank_gaps = storage.record_gaps(
                storage.order_name(table.id, view.id), "rank", view.rank_base, view.rank_gaps, ranks, last=kept_last
            )
            _compact_later(table, view.rank_gaps, view)
    lookups.refresh_after_write(workspace, table, [], None, before)
    hooks.row_events(table, "deleted", sorted(row[0] for row in deleted))  # only rows that existed
    db.session.flush()
    return len(removed)
