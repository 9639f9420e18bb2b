"""Bulk edits of a table: find and replace within a column, delete the rows that match a filter.

Each is one undo step. Both can be counted first (the page previews how many cells or rows a
change touches) with the same function that makes the change, so the preview and the change agree.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, NamedTuple

import sqlalchemy as sa

from morket.core.errors import ValidationFailed
from morket.core.text import plural
from morket.core.types import Actor, Workspace
from morket.extensions import db
from morket.tables import service, storage
from morket.tables.cells import TEXT_MAX, CellError, check_characters, parse_cell
from morket.tables.filters import compile_filters, validate_filters
from morket.tables.models import Column, Table
from morket.tables.undo import push_undo, register_undo_kind

REPLACEABLE_TYPES = frozenset({"text", "long_text", "email", "url", "phone", "domain", "single_select"})
MAX_FIND_CHARS = 1000
MAX_REPLACE_CELLS = 50_000
MAX_DELETE_ROWS = service.MAX_DELETE_ROWS


class Replacement(NamedTuple):
    """What a find and replace does (or did): cells changed, and the first cell it refused."""

    changed: int
    refused: int
    first_problem: str | None


def _like_escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _replace_column(table: Table, column_id: Any) -> Column:
    column = next((c for c in table.live_columns if str(c.id) == str(column_id)), None)
    if column is None:
        raise ValidationFailed("Pick a column of this table.", fields={"column": ["unknown column"]})
    if column.type not in REPLACEABLE_TYPES:
        raise ValidationFailed(
            f"{column.name} holds {column.type.replace('_', ' ')} values; find and replace works on text columns.",
            fields={"column": ["not text"]},
        )
    return column


def _text_input(value: Any, name: str, *, required: bool) -> str:
    if not isinstance(value, str) or (required and not value) or len(value) > MAX_FIND_CHARS:
        what = "1" if required else "0"
        raise ValidationFailed(f"Enter {what} to {MAX_FIND_CHARS:,} characters to {name}.", fields={name: ["length"]})
    try:
        check_characters(value)
    except CellError as exc:
        raise ValidationFailed(f"{name.capitalize()}: {exc}", fields={name: [str(exc)]}) from exc
    return value


def _plan_replace(
    table: Table, column: Column, find: str, replacement: str, *, match_case: bool, whole_cell: bool
) -> tuple[dict[int, dict[int, Any]], dict[int, dict[int, Any]], list[str]]:
    """Return (old cells, new cells, problems) of the cells the replacement changes."""
    store = storage.storage_for(table)
    cell = store.columns[column.id]
    if whole_cell:
        where = cell == find if match_case else cell.ilike(_like_escape(find), escape="\\")
    else:
        where = sa.func.strpos(cell, find) > 0 if match_case else cell.ilike(f"%{_like_escape(find)}%", escape="\\")
    found = db.session.execute(
        sa.select(store.rows.c.id, cell).where(where).order_by(store.rows.c.pos).limit(MAX_REPLACE_CELLS + 1)
    ).all()
    if len(found) > MAX_REPLACE_CELLS:
        raise ValidationFailed(
            f"More than {MAX_REPLACE_CELLS:,} cells match; replace in smaller parts (for example whole cells).",
            fields={"find": ["too many matches"]},
        )
    pattern = re.compile(re.escape(find), 0 if match_case else re.IGNORECASE)
    old: dict[int, dict[int, Any]] = {}
    new: dict[int, dict[int, Any]] = {}
    problems: list[str] = []
    for row_id, value in found:
        if whole_cell:
            hit = value == find if match_case else value.lower() == find.lower()
            text = replacement if hit else value
        else:
            text = pattern.sub(lambda _m: replacement, value)
        if text == value:
            continue
        try:
            stored = parse_cell(column.type, column.config, text)
        except CellError as exc:
            problems.append(str(exc))
            continue
        if stored != value:
            old[row_id] = {column.id: value}
            new[row_id] = {column.id: stored}
    return old, new, problems


def replace_in_column(
    workspace: Workspace,
    actor: Actor,
    table: Table,
    column_id: Any,
    find: Any,
    replacement: Any,
    *,
    match_case: bool = False,
    whole_cell: bool = False,
    preview: bool = False,
) -> Replacement:
    """Replace ``find`` with ``replacement`` in one column (plain text), or only count with ``preview``.

    All or nothing: when a replaced value would not be valid for the column, nothing changes.
    """
    service.check_owned(workspace, table)
    column = _replace_column(table, column_id)
    find = _text_input(find, "find", required=True)
    replacement = _text_input(replacement, "replace", required=False)
    if len(replacement) > TEXT_MAX and column.type != "long_text":
        raise ValidationFailed("The replacement is too long.", fields={"replace": ["length"]})
    old, new, problems = _plan_replace(table, column, find, replacement, match_case=match_case, whole_cell=whole_cell)
    result = Replacement(len(new), len(problems), problems[0] if problems else None)
    if preview:
        return result
    if problems:
        raise ValidationFailed(
            f"{plural(len(problems), 'replaced value')} would not fit {column.name} "
            f"(first: {problems[0]}); nothing was replaced.",
            fields={"replace": ["invalid for the column"]},
        )
    if not new:
        return result
    forward, backward, changes = service.cell_steps(table, old, new)
    service.write_cells(workspace, table, changes)
    push_undo(workspace, actor, table, "bulk.replace", {"cells": forward}, {"cells": backward})
    return result


def _where(table: Table, filters: Mapping[str, Any]) -> Any:
    store = storage.storage_for(table)
    configs = {c.id: c.config for c in table.live_columns}
    clean = validate_filters(filters, store.types, configs)
    if not clean.get("conditions"):
        raise ValidationFailed("Add a condition that says which rows to delete.", fields={"filters": ["empty"]})
    return compile_filters(clean, store)


def count_matching_rows(workspace: Workspace, actor: Actor, table: Table, filters: Mapping[str, Any]) -> int:
    """Return how many rows match ``filters`` (a filter group as views store them)."""
    service.check_owned(workspace, table)
    rows = storage.storage_for(table).rows
    return db.session.execute(sa.select(sa.func.count()).select_from(rows).where(_where(table, filters))).scalar_one()


def delete_matching_rows(workspace: Workspace, actor: Actor, table: Table, filters: Mapping[str, Any]) -> int:
    """Delete the rows that match ``filters`` as one undo step; return how many were deleted."""
    service.check_owned(workspace, table)
    where = _where(table, filters)
    service.lock_rows(table)
    rows = storage.storage_for(table).rows
    ids = list(db.session.scalars(sa.select(rows.c.id).where(where).limit(MAX_DELETE_ROWS + 1)))
    if len(ids) > MAX_DELETE_ROWS:
        raise ValidationFailed(
            f"More than {MAX_DELETE_ROWS:,} rows match; narrow the filter to delete at most that many at once.",
            fields={"filters": ["too many rows"]},
        )
    if not ids:
        return 0
    gone = service.row_snapshots(table, ids)
    deleted = service.delete_rows(workspace, actor, table, ids)
    push_undo(workspace, actor, table, "bulk.delete", {"delete": gone}, {"insert": gone})
    return deleted


register_undo_kind("bulk.replace", service.apply_grid_change, label="the find and replace")
register_undo_kind("bulk.delete", service.apply_grid_change, label="the delete of matching rows")
