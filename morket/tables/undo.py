"""Undo and redo of grid changes: steps kept in PostgreSQL, per user and per table.

A step holds two payloads: ``forward`` (redo) and ``backward`` (undo), each applied by the
function registered for the step's ``kind``. Every user keeps the newest ``MAX_STEPS`` steps of a
table; undone steps form the redo stack, which a new step clears. Appliers never overwrite what
someone else changed since the step: they apply the rest and raise ``UndoConflict`` to say so.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, datetime
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from sqlalchemy import BigInteger, Boolean, ForeignKey, Index, String, select
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from morket.core.db import IdMixin, TimestampMixin, WorkspaceScoped
from morket.core.errors import Conflict, NotFound
from morket.core.types import Actor, Workspace
from morket.extensions import db
from morket.tables.models import Table

MAX_STEPS = 50

ApplyFn = Callable[[Workspace, Actor, Table, dict[str, Any]], None]
_KINDS: dict[str, ApplyFn] = {}
_LABELS: dict[str, str] = {}


class UndoStep(IdMixin, TimestampMixin, WorkspaceScoped, db.Model):
    """One undoable change of a table by one user."""

    __tablename__ = "undo_steps"
    __table_args__ = (Index("ix_undo_steps_table_user", "table_id", "user_id", "id"),)

    table_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("tables.id", ondelete="CASCADE"), nullable=False)
    user_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("users.id", ondelete="CASCADE"), nullable=False)
    kind: Mapped[str] = mapped_column(String(40), nullable=False)
    forward: Mapped[dict[str, Any]] = mapped_column(JSONB, nullable=False)
    backward: Mapped[dict[str, Any]] = mapped_column(JSONB, nullable=False)
    # Undone steps are the redo stack; a new step deletes them.
    undone: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)


class UndoConflict(Conflict):
    """Raised by an applier after applying what it could: someone else changed some of it since."""


def register_undo_kind(kind: str, apply_fn: ApplyFn, *, label: str | None = None) -> None:
    """Register the function that applies payloads of ``kind`` (for both undo and redo).

    ``label`` names the change in messages ("Undid the paste."), e.g. "the paste".
    """
    _KINDS[kind] = apply_fn
    if label:
        _LABELS[kind] = label


def describe(kind: str) -> str:
    """Return the words that name a change of ``kind`` in a message."""
    return _LABELS.get(kind, "the last change")


def push_undo(workspace: Workspace, actor: Actor, table: Table, kind: str, forward: dict, backward: dict) -> UndoStep:
    """Record a step for the actor, clear their redo stack and keep their newest MAX_STEPS steps."""
    if kind not in _KINDS:
        raise ValueError(f"unregistered undo kind {kind!r}")
    _check(workspace, table)
    mine = (UndoStep.table_id == table.id, UndoStep.user_id == actor.id)
    db.session.execute(sa.delete(UndoStep).where(*mine, UndoStep.undone.is_(True)))
    step = UndoStep(
        workspace_id=workspace.id,
        table_id=table.id,
        user_id=actor.id,
        kind=kind,
        forward=forward,
        backward=backward,
        undone=False,
    )
    db.session.add(step)
    db.session.flush()
    keep = select(UndoStep.id).where(*mine).order_by(UndoStep.id.desc()).limit(MAX_STEPS).scalar_subquery()
    db.session.execute(
        sa.delete(UndoStep).where(*mine, UndoStep.id.not_in(keep)).execution_options(synchronize_session=False)
    )
    return step


def undo_last(workspace: Workspace, actor: Actor, table: Table) -> UndoStep | None:
    """Apply the backward payload of the actor's newest step; return it, or None when there is none."""
    _check(workspace, table)
    step = _locked_step(table, actor, undone=False)
    if step is None:
        return None
    return _apply(workspace, actor, table, step, step.backward, undone=True)


def redo_next(workspace: Workspace, actor: Actor, table: Table) -> UndoStep | None:
    """Apply the forward payload of the actor's most recently undone step; return it, or None."""
    _check(workspace, table)
    step = _locked_step(table, actor, undone=True)
    if step is None:
        return None
    return _apply(workspace, actor, table, step, step.forward, undone=False)


def undo_depth(workspace: Workspace, actor: Actor, table: Table) -> tuple[int, int]:
    """Return how many steps the actor can undo and redo on ``table``."""
    _check(workspace, table)
    rows = db.session.execute(
        select(UndoStep.undone, sa.func.count())
        .where(UndoStep.table_id == table.id, UndoStep.user_id == actor.id)
        .group_by(UndoStep.undone)
    ).all()
    counts = dict(rows)
    return counts.get(False, 0), counts.get(True, 0)


def _locked_step(table: Table, actor: Actor, *, undone: bool) -> UndoStep | None:
    # Undo takes the newest done step; redo the oldest undone one (the last undone, as undo walks back).
    order = UndoStep.id.asc() if undone else UndoStep.id.desc()
    return db.session.scalars(
        select(UndoStep)
        .where(UndoStep.table_id == table.id, UndoStep.user_id == actor.id, UndoStep.undone.is_(undone))
        .order_by(order)
        .limit(1)
        .with_for_update()
    ).one_or_none()


def _apply(
    workspace: Workspace, actor: Actor, table: Table, step: UndoStep, payload: dict, *, undone: bool
) -> UndoStep:
    apply_fn = _KINDS.get(step.kind)
    if apply_fn is None:
        raise Conflict("This change can no longer be undone.")
    try:
        apply_fn(workspace, actor, table, payload)
    except UndoConflict:
        step.undone = undone
        db.session.flush()
        raise
    step.undone = undone
    db.session.flush()
    return step


def _check(workspace: Workspace, table: Table) -> None:
    if table.workspace_id != workspace.id:
        raise NotFound("That table does not exist.")


# --- stored cell values as JSON --------------------------------------------------------------------

_NUMERIC = frozenset({"number", "currency", "percent"})


def dump_value(column_type: str, value: Any) -> Any:
    """Return a stored cell value as JSON (numbers as exact strings, dates in ISO 8601)."""
    if value is None:
        return None
    if column_type in _NUMERIC and isinstance(value, Decimal):
        return str(value)
    if isinstance(value, datetime | date):
        return value.isoformat()
    return value


def load_value(column_type: str, data: Any) -> Any:
    """Return the stored cell value that ``dump_value`` wrote as JSON."""
    if data is None:
        return None
    if column_type in _NUMERIC:
        return Decimal(data)
    if column_type == "date":
        return date.fromisoformat(data)
    if column_type == "datetime":
        return datetime.fromisoformat(data)
    return data
