"""Column operations of the grid: add, rename, retype, reorder, resize, hide, freeze, delete, formulas.

Every operation records an undo step (``morket.tables.undo``) whose payloads carry what the
change expects to find, so that undoing after someone else changed the same thing says so
instead of overwriting it.

Retype keeps every value: the job converts each cell with the new type's own parser
(``cells.parse_cell``, the same rules as typing into the cell); a cell that does not convert
becomes blank and its original value is kept in the row's ``cell_state`` under the column id
(``{"status": "error", "message": …, "original": …, "original_type": …}``), where the grid shows
it as an error with the original in its tooltip. Converting the column again (or undoing the
retype) tries those originals first, so text → number → text gives the text back.

Formula columns are materialised: their text lives in the column's storage, their per-cell errors
in ``cell_state`` (same shape, without ``original``). Saving a cell recomputes that row's formulas
(``refresh_formula_rows``); a new or changed formula recomputes every row in a job, batch by
batch inside one transaction, so readers keep reading the previous values until it commits.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import date, datetime
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from sqlalchemy import BigInteger, DateTime, ForeignKey, Index, String, Text, select
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from morket.core.db import IdMixin, TimestampMixin, WorkspaceScoped, utcnow
from morket.core.errors import Conflict, NotFound, ValidationFailed
from morket.core.jobs import QUEUE_DEFAULT, enqueue_after_commit
from morket.core.types import Actor, Workspace
from morket.extensions import db
from morket.tables import formula, lookups, service, storage
from morket.tables.access import check_owned, list_views, mark_views_stale
from morket.tables.column_configs import clean_config
from morket.tables.formula_rows import check_formula, formula_sources
from morket.tables.models import COLUMN_TYPES, Column, Table, View
from morket.tables.number_format import FORMAT_KEYS, carried_format, has_number_format
from morket.tables.undo import UndoConflict, push_undo, register_undo_kind

RETYPE_TARGETS = tuple(t for t in COLUMN_TYPES if t not in ("formula", "lookup", "enrichment", "ai"))
FORMULA_BATCH_ROWS = 20_000
RETYPE_BATCH_ROWS = 5_000
SAMPLE_SIZE = 10


class ColumnJob(IdMixin, TimestampMixin, WorkspaceScoped, db.Model):
    """Progress of a column job (retype, formula recompute), kept in PostgreSQL for the progress bar."""

    __tablename__ = "table_column_jobs"
    __table_args__ = (Index("ix_table_column_jobs_table_id", "table_id", "id"),)

    table_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("tables.id", ondelete="CASCADE"), nullable=False)
    column_id: Mapped[int] = mapped_column(BigInteger, nullable=False)
    kind: Mapped[str] = mapped_column(String(20), nullable=False)  # retype | formula
    state: Mapped[str] = mapped_column(String(20), nullable=False, default="queued")  # queued running done failed
    total: Mapped[int] = mapped_column(BigInteger, nullable=False, default=0)
    done: Mapped[int] = mapped_column(BigInteger, nullable=False, default=0)
    failed_count: Mapped[int] = mapped_column(BigInteger, nullable=False, default=0)
    params: Mapped[dict[str, Any]] = mapped_column(JSONB, nullable=False, default=dict)
    sample: Mapped[list[dict[str, Any]]] = mapped_column(JSONB, nullable=False, default=list)
    message: Mapped[str | None] = mapped_column(Text)
    created_by_id: Mapped[int | None] = mapped_column(BigInteger, ForeignKey("users.id", ondelete="SET NULL"))
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    @property
    def job_id(self) -> str:
        return f"{self.kind}-{self.table_id}-{self.column_id}-{self.id}"

    @property
    def finished(self) -> bool:
        return self.state in ("done", "failed")

    @property
    def percent(self) -> int:
        if self.state == "done":
            return 100
        return int(100 * self.done / self.total) if self.total else 0


# --- loaders ---------------------------------------------------------------------------------------


def get_column_or_404(table: Table, column_id: int) -> Column:
    """Return the table's live column ``column_id`` or raise NotFound."""
    for column in table.live_columns:
        if column.id == column_id:
            return column
    raise NotFound("That column does not exist.")


def get_job_or_404(workspace: Workspace, table: Table, job_id: int) -> ColumnJob:
    """Return the table's column job ``job_id`` or raise NotFound."""
    job = db.session.scalars(
        select(ColumnJob).where(
            ColumnJob.id == job_id, ColumnJob.table_id == table.id, ColumnJob.workspace_id == workspace.id
        )
    ).one_or_none()
    if job is None:
        raise NotFound("That job does not exist.")
    return job


def recent_jobs(workspace: Workspace, table: Table, limit: int = 5) -> list[ColumnJob]:
    """Return the table's unfinished column jobs and those finished in the last minutes, newest first."""
    return list(
        db.session.scalars(
            select(ColumnJob)
            .where(ColumnJob.table_id == table.id, ColumnJob.workspace_id == workspace.id)
            .where(
                sa.or_(
                    ColumnJob.finished_at.is_(None),
                    ColumnJob.finished_at > sa.func.now() - sa.text("interval '10 minutes'"),
                )
            )
            .order_by(ColumnJob.id.desc())
            .limit(limit)
        )
    )


def default_view(workspace: Workspace, table: Table) -> View:
    """Return the table's first view (every table has one)."""
    return list_views(workspace, table)[0]


# --- formulas --------------------------------------------------------------------------------------


def _start_job(
    workspace: Workspace, actor: Actor | None, table: Table, column: Column, kind: str, params: dict[str, Any]
) -> ColumnJob:
    job = ColumnJob(
        workspace_id=workspace.id,
        table_id=table.id,
        column_id=column.id,
        kind=kind,
        state="queued",
        total=table.row_count,
        done=0,
        failed_count=0,
        params=params,
        sample=[],
        created_by_id=getattr(actor, "id", None),
    )
    db.session.add(job)
    db.session.flush()
    # Named by path, as every service names its job: the job's body (tables.tasks) imports this module.
    task = {
        "retype": "morket.tables.tasks.retype_column",
        "lookup": "morket.tables.tasks.fill_lookup",
    }.get(kind, "morket.tables.tasks.recompute_formula")
    enqueue_after_commit(task, job.id, queue=QUEUE_DEFAULT, job_id=job.job_id)
    return job


def set_formula(
    workspace: Workspace, actor: Actor | None, table: Table, column_id: int, expression: str, *, record: bool = True
) -> ColumnJob:
    """Change a formula column's expression and recompute every row in a job."""
    check_owned(workspace, table)
    column = get_column_or_404(table, column_id)
    if column.type != "formula":
        raise ValidationFailed(f"{column.name} is not a formula column.")
    expression = expression.strip() if isinstance(expression, str) else ""
    result_type = check_formula(table, expression, column_id=column.id)
    before = column.config.get("expression", "")
    column.config = {**column.config, "expression": expression, "result_type": result_type}
    _mark_views_stale(workspace, table, column)
    db.session.flush()
    if record:
        push_undo(
            workspace,
            actor,
            table,
            "column.formula",
            {"column_id": column.id, "expression": expression, "expect": before},
            {"column_id": column.id, "expression": before, "expect": expression},
        )
    return _start_job(workspace, actor, table, column, "formula", {"expression": expression})


# --- add, rename, delete, restore -----------------------------------------------------------------


def add_table_column(
    workspace: Workspace,
    actor: Actor | None,
    table: Table,
    name: str,
    column_type: str,
    *,
    config: Mapping[str, Any] | None = None,
    record: bool = True,
    index: int | None = None,
) -> tuple[Column, ColumnJob | None]:
    """Add a column at the end, or at ``index`` among the live columns (0 is first), its config checked
    for its type; a formula column is computed in a job."""
    column = service.add_column(workspace, actor, table, name, column_type, config=config)
    if index is not None:
        move_column(workspace, actor, table, column.id, index, record=False)
    if record:
        push_undo(
            workspace,
            actor,
            table,
            "column.lifecycle",
            {"column_id": column.id, "deleted": False},
            {"column_id": column.id, "deleted": True},
        )
    job = None
    if column_type == "formula":
        job = _start_job(workspace, actor, table, column, "formula", {"expression": column.config["expression"]})
    if column_type == "lookup":
        job = fill_lookup_column(workspace, actor, table, column)
    return column, job


def fill_lookup_column(workspace: Workspace, actor: Actor | None, table: Table, column: Column) -> ColumnJob | None:
    """Fill a lookup column: in the request when both tables are small, else in a job (returned)."""
    if lookups.is_large(column):
        return _start_job(workspace, actor, table, column, "lookup", {})
    lookups.fill_column(workspace, column)
    return None


def set_lookup(
    workspace: Workspace, actor: Actor | None, table: Table, column_id: int, config: Mapping[str, Any]
) -> tuple[Column, ColumnJob | None]:
    """Change a lookup column's settings (checked like a new one's) and fill it again."""
    check_owned(workspace, table)
    column = get_column_or_404(table, column_id)
    if column.type != "lookup":
        raise ValidationFailed(f"{column.name} is not a lookup column.", fields={"config": ["not a lookup"]})
    before = column.config or {}
    column.config = clean_config(table, "lookup", config, column_id=column.id)
    _mark_views_stale(workspace, table, column)
    db.session.flush()
    lookups.prune_indexes(workspace.id, {table.id, int(before.get("source_table_id") or 0)})
    return column, fill_lookup_column(workspace, actor, table, column)


def rename_table_column(
    workspace: Workspace, actor: Actor | None, table: Table, column_id: int, name: str, *, record: bool = True
) -> Column:
    """Rename a column and every formula reference to it."""
    column = get_column_or_404(table, column_id)
    before = column.name
    service.rename_column(workspace, actor, table, column_id, name)
    if column.name != before:
        for other in table.live_columns:
            if other.type == "formula" and other.config.get("expression"):
                rewritten = formula.rename_reference(other.config["expression"], before, column.name)
                if rewritten != other.config["expression"]:
                    other.config = {**other.config, "expression": rewritten}
    db.session.flush()
    if record:
        push_undo(
            workspace,
            actor,
            table,
            "column.rename",
            {"column_id": column.id, "name": column.name, "expect": before},
            {"column_id": column.id, "name": before, "expect": column.name},
        )
    return column


def _users_of(table: Table, column: Column) -> list[Column]:
    store = storage.storage_for(table)
    sources, formulas = formula_sources(table, store)
    users = []
    for other in table.live_columns:
        if other.type == "formula" and other.id != column.id:
            try:
                used = formula.compile_formula(formulas[other.id], sources, formulas, self_id=other.id).used_column_ids
            except formula.FormulaError:
                continue
            referenced = {r.name.casefold() for r in formula.references(formula.parse(formulas[other.id]))}
            if column.id in used or column.name.casefold() in referenced:
                users.append(other)
    return users


def delete_table_column(
    workspace: Workspace, actor: Actor | None, table: Table, column_id: int, *, record: bool = True
) -> Column:
    """Delete a column (restorable); refused while a formula uses it."""
    column = get_column_or_404(table, column_id)
    users = _users_of(table, column)
    if users:
        names = ", ".join(u.name for u in users)
        raise ValidationFailed(f"{column.name} is used by the formula of {names}; change that formula first.")
    service.delete_column(workspace, actor, table, column_id)
    if record:
        push_undo(
            workspace,
            actor,
            table,
            "column.lifecycle",
            {"column_id": column.id, "deleted": True},
            {"column_id": column.id, "deleted": False},
        )
    return column


# --- number format ---------------------------------------------------------------------------------


def _format_part(config: Mapping[str, Any]) -> dict[str, Any]:
    return {k: config[k] for k in FORMAT_KEYS if k in config}


def set_column_format(
    workspace: Workspace,
    actor: Actor | None,
    table: Table,
    column_id: int,
    fields: Mapping[str, Any],
    *,
    record: bool = True,
) -> Column:
    """Replace a number column's format (``number_format``: decimals, thousands, style, currency).

    Only the format's keys change; the cells keep their values, so nothing is recomputed.
    """
    check_owned(workspace, table)
    column = get_column_or_404(table, column_id)
    if not has_number_format(column.type, column.config):
        raise ValidationFailed(f"{column.name} does not hold numbers; only number columns have a number format.")
    before = _format_part(column.config)
    kept = {k: v for k, v in column.config.items() if k not in FORMAT_KEYS}
    if column.type == "currency" and "currency" not in fields:
        kept["currency"] = column.config.get("currency", "USD")
    clean = clean_config(table, column.type, {**kept, **_format_part(fields)}, column_id=column.id)
    column.config = clean
    db.session.flush()
    after = _format_part(clean)
    if record and after != before:
        push_undo(
            workspace,
            actor,
            table,
            "column.format",
            {"column_id": column.id, "format": after, "expect": before},
            {"column_id": column.id, "format": before, "expect": after},
        )
    return column


# --- order, width, hidden, frozen ------------------------------------------------------------------


def move_column(
    workspace: Workspace, actor: Actor | None, table: Table, column_id: int, to_index: int, *, record: bool = True
) -> Column:
    """Move a column to ``to_index`` among the live columns (0 is first); positions stay dense."""
    check_owned(workspace, table)
    column = get_column_or_404(table, column_id)
    live = table.live_columns
    if isinstance(to_index, bool) or not isinstance(to_index, int) or not 0 <= to_index < len(live):
        raise ValidationFailed(f"Move to a place between 1 and {len(live)}.", fields={"position": ["out of range"]})
    before = [c.id for c in live]
    order = [c for c in live if c.id != column.id]
    order.insert(to_index, column)
    _apply_order(table, [c.id for c in order])
    if record and before != [c.id for c in order]:
        push_undo(
            workspace,
            actor,
            table,
            "column.order",
            {"order": [c.id for c in order], "expect": before},
            {"order": before, "expect": [c.id for c in order]},
        )
    return column


def _apply_order(table: Table, ids: list[int]) -> None:
    rank = {cid: i for i, cid in enumerate(ids)}
    live = sorted(table.live_columns, key=lambda c: rank.get(c.id, len(ids) + c.position))
    for i, col in enumerate(live):
        col.position = i
    for j, col in enumerate(c for c in table.columns if c.deleted_at is not None):
        col.position = len(live) + j
    table.columns.sort(key=lambda c: c.position)
    table.version += 1
    db.session.flush()


def _view_for(workspace: Workspace, table: Table, view: View | None) -> View:
    if view is None:
        return default_view(workspace, table)
    check_owned(workspace, table, view)
    if view.table_id != table.id:
        raise NotFound("That view does not exist.")
    return view


def resize_column(
    workspace: Workspace,
    actor: Actor | None,
    table: Table,
    view: View | None,
    column_id: int,
    width: int,
    *,
    record: bool = True,
) -> View:
    """Set a column's width in the view (40 to 1,200 pixels)."""
    view = _view_for(workspace, table, view)
    column = get_column_or_404(table, column_id)
    key = str(column.id)
    before = (view.widths or {}).get(key)
    widths = {**(view.widths or {}), key: width}
    service.update_view(workspace, actor, table, view, widths=widths)
    if record and before != width:
        push_undo(
            workspace,
            actor,
            table,
            "column.width",
            {"view_id": view.id, "column_id": column.id, "width": width, "expect": before},
            {"view_id": view.id, "column_id": column.id, "width": before, "expect": width},
        )
    return view


def set_column_hidden(
    workspace: Workspace,
    actor: Actor | None,
    table: Table,
    view: View | None,
    column_id: int,
    hidden: bool,
    *,
    record: bool = True,
) -> View:
    """Hide or show a column in the view."""
    view = _view_for(workspace, table, view)
    column = get_column_or_404(table, column_id)
    current = set(view.hidden_column_ids or [])
    was = column.id in current
    wanted = current | {column.id} if hidden else current - {column.id}
    live = {c.id for c in table.live_columns}
    service.update_view(workspace, actor, table, view, hidden_column_ids=sorted(wanted & live))
    if record and was != hidden:
        push_undo(
            workspace,
            actor,
            table,
            "column.hidden",
            {"view_id": view.id, "column_id": column.id, "hidden": hidden},
            {"view_id": view.id, "column_id": column.id, "hidden": was},
        )
    return view


def freeze_columns(
    workspace: Workspace, actor: Actor | None, table: Table, view: View | None, count: int, *, record: bool = True
) -> View:
    """Freeze the first ``count`` visible columns of the view (0 to 10)."""
    view = _view_for(workspace, table, view)
    before = view.frozen_count
    service.update_view(workspace, actor, table, view, frozen_count=count)
    if record and before != count:
        push_undo(
            workspace,
            actor,
            table,
            "column.frozen",
            {"view_id": view.id, "count": count, "expect": before},
            {"view_id": view.id, "count": before, "expect": count},
        )
    return view


# --- retype ----------------------------------------------------------------------------------------


def next_column_name(column: Column) -> str:
    """Return the storage name of the column being filled by a retype."""
    return f"{column.storage_name}_next"


def start_retype(
    workspace: Workspace,
    actor: Actor | None,
    table: Table,
    column_id: int,
    new_type: str,
    *,
    config: Mapping[str, Any] | None = None,
    record: bool = True,
) -> ColumnJob:
    """Check a type change and start the job that converts the column's cells."""
    check_owned(workspace, table)
    column = get_column_or_404(table, column_id)
    if new_type not in RETYPE_TARGETS:
        raise ValidationFailed(
            "Pick one of the listed types (formula columns are added as new columns).", fields={"type": ["bad type"]}
        )
    if column.type in ("enrichment",):
        raise ValidationFailed("Enrichment columns keep their type.", fields={"type": ["not convertible"]})
    if new_type == column.type and config is None:
        raise ValidationFailed(f"{column.name} is already of that type.", fields={"type": ["same type"]})
    running = db.session.scalars(
        select(ColumnJob.id).where(
            ColumnJob.table_id == table.id,
            ColumnJob.column_id == column.id,
            ColumnJob.finished_at.is_(None),
            # A job older than its time limit died with its worker; it no longer holds the column.
            ColumnJob.created_at > sa.func.now() - sa.text("interval '1 hour'"),
        )
    ).first()
    if running is not None:
        raise Conflict(f"{column.name} is still being converted; wait for that to finish.")
    # A number column keeps its format where the new type still shows it (decimals, separators, style).
    kept = carried_format(column.type, column.config, new_type)
    clean = clean_config(table, new_type, {**kept, **(config or {})})
    for other in _users_of(table, column):
        check_formula(table, other.config.get("expression", ""), column_id=other.id, types={column.id: new_type})
    next_name = next_column_name(column)
    physical = f"{storage.USER_SCHEMA}.{storage.rows_name(table.id)}"
    # Generated names only (ut.t_<id>, c_<id>_next); the fresh column is filled by the job.
    db.session.execute(sa.text(f"ALTER TABLE {physical} DROP COLUMN IF EXISTS {next_name}"))
    db.session.execute(sa.text(f"ALTER TABLE {physical} ADD COLUMN {next_name} {storage.sql_type(new_type)}"))
    params = {
        "from_type": column.type,
        "from_config": column.config,
        "to_type": new_type,
        "to_config": clean,
        "derive_options": new_type in ("single_select", "multi_select") and not clean.get("options"),
        "record": record,
    }
    return _start_job(workspace, actor, table, column, "retype", params)


def raw_of(column_type: str, value: Any) -> Any:
    """Return a stored value as the raw input a user would type for it (what conversion parses)."""
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Decimal):
        return format(value.normalize(), "f") if value else "0"
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, list):
        return ", ".join(str(v) for v in value)
    if column_type in ("json", "enrichment"):
        return value if isinstance(value, str) else json.dumps(value)
    return value


def json_value(value: Any) -> Any:
    """Return a parsed cell value as JSON for the conversion statement."""
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, datetime | date):
        return value.isoformat()
    return value


def _mark_views_stale(workspace: Workspace, table: Table, column: Column) -> None:
    mark_views_stale(workspace, table, {column.id})


def drop_column_from_views(workspace: Workspace, table: Table, column: Column) -> None:
    """Remove sort keys and filter conditions on ``column`` (its values changed type)."""

    def prune(group: dict[str, Any]) -> dict[str, Any]:
        kept = []
        for cond in group.get("conditions") or []:
            if "conditions" in cond:
                inner = prune(cond)
                if inner["conditions"]:
                    kept.append(inner)
            elif cond.get("column_id") != column.id:
                kept.append(cond)
        return {**group, "conditions": kept}

    for view in list_views(workspace, table):
        sort = [k for k in view.sort or [] if k.get("column_id") != column.id]
        filters = prune(view.filters) if view.filters else view.filters
        if sort != (view.sort or []) or filters != view.filters:
            view.sort, view.filters, view.order_stale = sort, filters, True
    db.session.flush()


# --- undo appliers ---------------------------------------------------------------------------------


def _undo_rename(workspace: Workspace, actor: Actor, table: Table, payload: dict) -> None:
    column = _undo_column(table, payload["column_id"])
    if column.name != payload["expect"]:
        raise UndoConflict(f"Someone renamed that column to “{column.name}” since; it keeps that name.")
    rename_table_column(workspace, actor, table, column.id, payload["name"], record=False)


def _undo_column(table: Table, column_id: int) -> Column:
    for column in table.columns:
        if column.id == column_id:
            return column
    raise UndoConflict("That column no longer exists.")


def _undo_lifecycle(workspace: Workspace, actor: Actor, table: Table, payload: dict) -> None:
    column = _undo_column(table, payload["column_id"])
    if payload["deleted"]:
        if column.deleted_at is None:
            delete_table_column(workspace, actor, table, column.id, record=False)
    elif column.deleted_at is not None:
        service.restore_column(workspace, actor, table, column.id)


def _undo_order(workspace: Workspace, actor: Actor, table: Table, payload: dict) -> None:
    current = [c.id for c in table.live_columns]
    _apply_order(table, payload["order"])
    if current != payload["expect"]:
        raise UndoConflict("The columns were moved by someone else since; the order was restored where it could be.")


def _undo_view(workspace: Workspace, table: Table, view_id: int) -> View:
    try:
        return service.get_view_or_404(workspace, table, view_id)
    except NotFound as exc:
        raise UndoConflict("That view no longer exists.") from exc


def _undo_width(workspace: Workspace, actor: Actor, table: Table, payload: dict) -> None:
    view = _undo_view(workspace, table, payload["view_id"])
    key = str(payload["column_id"])
    if (view.widths or {}).get(key) != payload["expect"]:
        raise UndoConflict("Someone resized that column since; it keeps their width.")
    widths = {k: v for k, v in (view.widths or {}).items() if k != key}
    if payload["width"] is not None:
        widths[key] = payload["width"]
    service.update_view(workspace, actor, table, view, widths=widths)


def _undo_hidden(workspace: Workspace, actor: Actor, table: Table, payload: dict) -> None:
    view = _undo_view(workspace, table, payload["view_id"])
    set_column_hidden(workspace, actor, table, view, payload["column_id"], payload["hidden"], record=False)


def _undo_frozen(workspace: Workspace, actor: Actor, table: Table, payload: dict) -> None:
    view = _undo_view(workspace, table, payload["view_id"])
    if view.frozen_count != payload["expect"]:
        raise UndoConflict("Someone changed the frozen columns since; they stay as they are.")
    service.update_view(workspace, actor, table, view, frozen_count=payload["count"])


def _undo_formula(workspace: Workspace, actor: Actor, table: Table, payload: dict) -> None:
    column = _undo_column(table, payload["column_id"])
    if column.config.get("expression", "") != payload["expect"]:
        raise UndoConflict("Someone changed that formula since; it keeps their formula.")
    set_formula(workspace, actor, table, column.id, payload["expression"], record=False)


def _undo_format(workspace: Workspace, actor: Actor, table: Table, payload: dict) -> None:
    column = _undo_column(table, payload["column_id"])
    if _format_part(column.config) != payload["expect"]:
        raise UndoConflict("Someone changed that column's format since; it keeps their format.")
    set_column_format(workspace, actor, table, column.id, payload["format"], record=False)


def _undo_retype(workspace: Workspace, actor: Actor, table: Table, payload: dict) -> None:
    column = _undo_column(table, payload["column_id"])
    if column.type != payload["expect"]:
        raise UndoConflict("Someone changed that column's type since; it keeps their type.")
    start_retype(workspace, actor, table, column.id, payload["type"], config=payload["config"], record=False)


register_undo_kind("column.rename", _undo_rename, label="the column rename")
register_undo_kind("column.lifecycle", _undo_lifecycle, label="the column change")
register_undo_kind("column.order", _undo_order, label="the column move")
register_undo_kind("column.width", _undo_width)
register_undo_kind("column.hidden", _undo_hidden, label="the hidden column change")
register_undo_kind("column.frozen", _undo_frozen, label="the frozen columns change")
register_undo_kind("column.formula", _undo_formula)
register_undo_kind("column.retype", _undo_retype, label="the type change")
register_undo_kind("column.format", _undo_format, label="the format change")


def finish_job(job: ColumnJob, state: str, message: str | None = None) -> None:
    """Mark a job finished."""
    job.state = state
    job.message = message
    job.finished_at = utcnow()
    if state == "done":
        job.done = job.total
    db.session.flush()


def job_row_numbers(table: Table) -> Any:
    """Return the SQL for a row's 1-based number in the default order."""
    rows = storage.storage_for(table).rows
    return rows.c.pos - select(sa.func.min(rows.c.pos)).scalar_subquery() + 1
