"""Grid edit endpoints: save a cell, add and delete rows, paste, fill down, clear, undo and redo.

They answer the grid's script: a saved cell comes back as its re-rendered markup, everything else
as the JSON envelope (``api_ok``/``api_error``) with a message to show. Each request commits once.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from flask import flash, make_response, render_template, request
from flask_login import current_user

from morket.core.api import api_error, api_ok
from morket.core.errors import MorketError, ValidationFailed
from morket.core.ratelimit import GRID_LIMIT
from morket.core.tenancy import workspace_page
from morket.core.text import plural
from morket.core.types import Actor, Member, Workspace
from morket.extensions import db, limiter
from morket.tables import bp, column_service, editing, number_format, service, undo
from morket.tables.models import Table, View

RULE = "/w/<slug>/tables/<int:table_id>"
MAX_IDS = editing.MAX_SELECTION_ROWS


def _int(name: str, *, required: bool = True, low: int = 0, high: int = 2**62) -> int | None:
    raw = (request.form.get(name) or "").strip()
    if not raw:
        if required:
            raise ValidationFailed(f"{name} is required.", fields={name: ["required"]})
        return None
    if not raw.isdigit() or not low <= int(raw) <= high:
        raise ValidationFailed(f"{name} must be a whole number from {low:,}.", fields={name: ["not a number"]})
    return int(raw)


def _ids(name: str) -> list[int]:
    parts = [p.strip() for p in (request.form.get(name) or "").split(",") if p.strip()]
    if len(parts) > MAX_IDS or any(not p.isdigit() or len(p) > 18 for p in parts):
        raise ValidationFailed(f"{name} is a list of at most {MAX_IDS:,} ids.", fields={name: ["bad ids"]})
    return [int(p) for p in parts]


def _view(workspace: Workspace, table: Table) -> View | None:
    view_id = _int("view", required=False)
    return None if view_id is None else service.get_view_or_404(workspace, table, view_id)


def _selected_rows(workspace: Workspace, table: Table, view: View | None, count: int | None = None) -> list[int]:
    """Return the rows named by ``row_ids``, or by view positions ``start``..``end`` checked by ``row_id``."""
    ids = _ids("row_ids")
    if ids:
        return ids
    start = _int("start")
    first_row_id = _int("row_id", required=count is None)
    if first_row_id is None:
        return []
    if count is None:
        count = _int("end", low=start, high=start + MAX_IDS - 1) - start + 1
    return editing.rows_at(workspace, current_user, table, view, start, count, first_row_id)


def _done(workspace: Workspace, table: Table, message: str, **data: Any):
    """Commit the request's change and answer with a message and the undo/redo depths for the toolbar."""
    undoable, redoable = undo.undo_depth(workspace, current_user, table)
    db.session.commit()
    return api_ok({"message": message, "undo": undoable, "redo": redoable, **data})


def _failed(exc: MorketError):
    db.session.rollback()
    return api_error(exc.code, exc.message, status=exc.status, fields=exc.fields)


@bp.post(f"{RULE}/cells")
@workspace_page("tables.edit")
@limiter.limit(GRID_LIMIT)
def save_cell(workspace: Workspace, membership: Member, table_id: int):
    try:
        table = service.get_table_or_404(workspace, table_id, lock="share")
        row_id, column_id = _int("row_id"), _int("column_id")
        column = next((c for c in table.live_columns if c.id == column_id), None)
        value = editing.save_cell(workspace, current_user, table, row_id, column_id, request.form.get("value", ""))
    except MorketError as exc:
        return _failed(exc)
    # Built before the commit, which expires the column another request may delete a moment later.
    resp = make_response(render_template("tables/_edit_cell.html", column=column, value=value))
    resp.headers["Cache-Control"] = "no-store"
    db.session.commit()
    return resp


@bp.post(f"{RULE}/rows/add")
@workspace_page("tables.edit")
@limiter.limit(GRID_LIMIT)
def add_rows(workspace: Workspace, membership: Member, table_id: int):
    try:
        table = service.get_table_or_404(workspace, table_id, lock="update")
        count = _int("count", required=False, low=1, high=editing.MAX_ADD_ROWS) or 1
        ids = editing.add_rows(workspace, current_user, table, count, after_row_id=_int("after_row_id", required=False))
    except MorketError as exc:
        return _failed(exc)
    return _done(workspace, table, f"Added {plural(len(ids), 'row')}.", row_ids=ids)


@bp.post(f"{RULE}/rows/delete")
@workspace_page("tables.edit")
@limiter.limit(GRID_LIMIT)
def delete_rows(workspace: Workspace, membership: Member, table_id: int):
    try:
        table = service.get_table_or_404(workspace, table_id, lock="update")
        removed = editing.remove_rows(workspace, current_user, table, _ids("row_ids"))
    except MorketError as exc:
        return _failed(exc)
    return _done(workspace, table, f"Deleted {plural(removed, 'row')}. Undo brings them back.", removed=removed)


@bp.post(f"{RULE}/paste")
@workspace_page("tables.edit")
@limiter.limit(GRID_LIMIT)
def paste(workspace: Workspace, membership: Member, table_id: int):
    try:
        table = service.get_table_or_404(workspace, table_id, lock="update")
        view = _view(workspace, table)
        text = request.form.get("text", "")
        if not text or len(text) > editing.MAX_PASTE_CHARS:
            raise ValidationFailed("Paste 1 character to 5 MB of text.", fields={"text": ["empty or too long"]})
        block = editing.parse_tsv(text)
        if len(block) > editing.MAX_SELECTION_ROWS:
            raise ValidationFailed(
                f"Paste at most {editing.MAX_SELECTION_ROWS:,} rows.", fields={"text": ["too many rows"]}
            )
        rows = _selected_rows(workspace, table, view, count=len(block))
        result = editing.paste_block(workspace, current_user, table, view, rows, _int("column_id"), block)
    except MorketError as exc:
        return _failed(exc)
    problems = [{"row": p.row, "column": p.column, "message": p.message} for p in result.problems]
    message = f"Pasted {plural(result.changed, 'cell')}"
    if result.added_rows:
        message += f" and added {plural(result.added_rows, 'row')}"
    message += "."
    if problems:
        first = problems[0]
        where = f"row {first['row'] + 1}, {first['column']}: " if first["column"] else ""
        message += f" {plural(len(problems), 'cell')} left unchanged ({where}{first['message']})."
    if problems and not result.changed and not result.added_rows:
        db.session.rollback()
        return api_error("validation_error", message, status=422, fields={"cells": [p["message"] for p in problems]})
    return _done(workspace, table, message, changed=result.changed, added_rows=result.added_rows, problems=problems)


@bp.post(f"{RULE}/fill")
@workspace_page("tables.edit")
@limiter.limit(GRID_LIMIT)
def fill(workspace: Workspace, membership: Member, table_id: int):
    try:
        table = service.get_table_or_404(workspace, table_id, lock="share")
        view = _view(workspace, table)
        rows = _selected_rows(workspace, table, view)
        changed = editing.fill_down(workspace, current_user, table, view, rows, _ids("column_ids"))
    except MorketError as exc:
        return _failed(exc)
    return _done(workspace, table, f"Filled {plural(changed, 'cell')}.", changed=changed)


@bp.post(f"{RULE}/clear")
@workspace_page("tables.edit")
@limiter.limit(GRID_LIMIT)
def clear(workspace: Workspace, membership: Member, table_id: int):
    try:
        table = service.get_table_or_404(workspace, table_id, lock="share")
        view = _view(workspace, table)
        rows = _selected_rows(workspace, table, view)
        changed = editing.clear_cells(workspace, current_user, table, view, rows, _ids("column_ids"))
    except MorketError as exc:
        return _failed(exc)
    return _done(workspace, table, f"Cleared {plural(changed, 'cell')}.", changed=changed)


def _step(
    workspace: Workspace,
    table_id: int,
    run: Callable[[Workspace, Actor, Table], undo.UndoStep | None],
    done: str,
    nothing: str,
):
    try:
        table = service.get_table_or_404(workspace, table_id, lock="update")
        step = run(workspace, current_user, table)
    except undo.UndoConflict as exc:
        # The rest of the step was applied: keep it, and say what was left alone.
        db.session.commit()
        return api_error(exc.code, exc.message, status=exc.status)
    except MorketError as exc:
        return _failed(exc)
    if step is None:
        return _done(workspace, table, nothing, kind=None)
    message = f"{done} {undo.describe(step.kind)}."
    if step.kind == "column.format":
        # The status bar formats sums with the header's format: send the one the column has now.
        column = column_service.get_column_or_404(table, step.forward["column_id"])
        fmt = number_format.format_json(number_format.format_of(column.type, column.config))
        return _done(workspace, table, message, kind=step.kind, column_format={"column_id": column.id, "format": fmt})
    if step.kind.startswith("column.") and step.kind != "column.width":
        # The header changed (a column came back, moved, was renamed): the grid reloads the page,
        # which shows this message as a flashed toast.
        flash(message, "success")
        return _done(workspace, table, message, kind=step.kind, reload=True)
    return _done(workspace, table, message, kind=step.kind)


@bp.post(f"{RULE}/undo", endpoint="undo")
@workspace_page("tables.edit")
@limiter.limit(GRID_LIMIT)
def undo_change(workspace: Workspace, membership: Member, table_id: int):
    return _step(workspace, table_id, undo.undo_last, "Undid", "Nothing to undo.")


@bp.post(f"{RULE}/redo", endpoint="redo")
@workspace_page("tables.edit")
@limiter.limit(GRID_LIMIT)
def redo_change(workspace: Workspace, membership: Member, table_id: int):
    return _step(workspace, table_id, undo.redo_next, "Redid", "Nothing to redo.")
