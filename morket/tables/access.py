"""The rules every read and write of a table follows: tenant loaders and checks, the row lock, stale views.

Other domains reach these through ``morket.tables.service`` (see its ``__all__``); the modules of
this package import them from here. Nothing here commits.

- ``check_owned`` is the one tenant check of objects passed in: another workspace's table, view or
  column raises NotFound, exactly as a lookup would, so existence does not leak.
- ``lock_rows`` serialises the writes that add or remove a table's rows (``FOR UPDATE`` on the
  table's row) and reloads the position keys they move.
- ``mark_views_stale`` is the one staleness rule: views sorted or filtered on changed cells (or
  searching text that changed, or any ordered view when rows were added) rebuild on their next read.
"""

from __future__ import annotations

from collections.abc import Iterable
from functools import lru_cache
from typing import Any, Literal

import sqlalchemy as sa
from sqlalchemy import event, select
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Session, joinedload
from sqlalchemy.orm.attributes import set_committed_value

from morket.core.errors import NotFound
from morket.core.types import Workspace
from morket.extensions import db
from morket.tables import storage
from morket.tables.filters import TEXT_LIKE
from morket.tables.models import Column, Table, View

# --- loaders ---------------------------------------------------------------------------------------


def get_table_or_404(workspace: Workspace, table_id: int, *, lock: Literal["share", "update"] | None = None) -> Table:
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
    if lock == "update":
        _note_row_lock(table)
    return table


@lru_cache(maxsize=1)
def _relock_statement() -> sa.Select:
    """The table's row lock as one Core read of its own row (every column, no columns' rows)."""
    t = Table.__table__
    return (
        sa.select(*t.c)
        .where(t.c.id == sa.bindparam("table_id"), t.c.workspace_id == sa.bindparam("workspace_id"))
        .with_for_update()
    )


def lock_loaded_table(workspace: Workspace, table: Table) -> Table:
    """Take the row lock ``FOR UPDATE`` of a table loaded earlier in this transaction (with its columns),
    as ``get_table_or_404(lock="update")`` would, without reading its columns again.

    The table's own row is read under the lock (positions, row count and the rest are fresh). Its
    columns were read before: they stand when ``tables.version`` (bumped by every change of the
    columns' layout) is the one they were read with; otherwise the table and its columns are read
    again under the lock. A table deleted meanwhile raises NotFound.
    """
    if table.workspace_id != workspace.id:
        raise NotFound("That table does not exist.")
    db.session.flush()
    row = db.session.execute(_relock_statement(), {"table_id": table.id, "workspace_id": workspace.id}).first()
    if row is None:
        raise NotFound("That table does not exist.")
    if row.version != table.version:
        return get_table_or_404(workspace, table.id, lock="update")
    attributes = _table_attributes()
    for name, value in row._mapping.items():
        attribute = attributes.get(name)
        if attribute is not None:
            set_committed_value(table, attribute, value)
    _note_row_lock(table)
    return table


@lru_cache(maxsize=1)
def _table_attributes() -> dict[str, str]:
    return {prop.columns[0].name: prop.key for prop in sa.inspect(Table).column_attrs}


def get_table_and_view_or_404(workspace: Workspace, table_id: int, view_id: int | None) -> tuple[Table, View | None]:
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


def list_tables(workspace: Workspace) -> list[Table]:
    """Return the workspace's tables, grouped by folder then by name."""
    return list(
        db.session.scalars(
            select(Table).where(Table.workspace_id == workspace.id).order_by(Table.folder.nulls_first(), Table.name)
        )
    )


def list_newest_tables(workspace: Workspace, limit: int) -> list[Table]:
    """Return at most ``limit`` of the workspace's tables, the newest first (one short indexed read)."""
    return list(
        db.session.scalars(
            select(Table).where(Table.workspace_id == workspace.id).order_by(Table.id.desc()).limit(limit)
        )
    )


def find_tables(workspace: Workspace, query: str, limit: int) -> list[Table]:
    """Return at most ``limit`` of the workspace's tables whose name contains ``query`` (any case), newest first.

    One statement: the workspace's index narrows to its tables, ``ILIKE`` filters their names and
    the ``LIMIT`` stops the scan early. ``%``, ``_`` and ``\\`` in ``query`` match themselves.
    """
    stmt = select(Table).where(Table.workspace_id == workspace.id)
    needle = query.strip()
    if needle:
        escaped = needle.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        stmt = stmt.where(Table.name.ilike(f"%{escaped}%", escape="\\"))
    return list(db.session.scalars(stmt.order_by(Table.id.desc()).limit(limit)))


def get_view_or_404(workspace: Workspace, table: Table, view_id: int) -> View:
    """Return the table's view ``view_id``, or raise NotFound."""
    check_owned(workspace, table)
    view = db.session.scalars(
        select(View).where(View.id == view_id, View.table_id == table.id, View.workspace_id == workspace.id)
    ).one_or_none()
    if view is None:
        raise NotFound("That view does not exist.")
    return view


def list_views(workspace: Workspace, table: Table) -> list[View]:
    """Return the table's saved views, oldest first."""
    check_owned(workspace, table)
    return list(
        db.session.scalars(
            select(View).where(View.table_id == table.id, View.workspace_id == workspace.id).order_by(View.id)
        )
    )


# --- ownership -------------------------------------------------------------------------------------


def check_owned(workspace: Workspace, *objects: Any) -> None:
    """Raise NotFound unless every object given (a table, view or column; None is skipped) is ``workspace``'s."""
    for obj in objects:
        if obj is not None and obj.workspace_id != workspace.id:
            raise NotFound("That table does not exist.")


def find_column(table: Table, column_id: int, *, deleted: bool = False) -> Column:
    """Return the table's live column ``column_id`` (a deleted one with ``deleted``), or raise NotFound."""
    for column in table.columns:
        if column.id == column_id and (column.deleted_at is not None) == deleted:
            return column
    raise NotFound("That column does not exist.")


# --- the row lock ----------------------------------------------------------------------------------


_ROW_LOCKS = "morket_table_row_locks"


def _current_transaction() -> Any:
    session = db.session()
    return session.get_nested_transaction() or session.get_transaction()


def _note_row_lock(table: Table) -> None:
    """Remember that this transaction (savepoint) holds ``table``'s row lock ``FOR UPDATE``, read under it."""
    db.session.info.setdefault(_ROW_LOCKS, {})[table.id] = _current_transaction()


def holds_row_lock(table: Table) -> bool:
    """Whether the session's transaction took ``table``'s row lock ``FOR UPDATE`` and still holds it.

    The lock is counted as held only while the transaction or savepoint that took it is still
    open: a savepoint rolled back releases its row locks, and one released (or a transaction
    ended) is not trusted either, so the next writer simply takes the lock again.
    """
    taken = db.session.info.get(_ROW_LOCKS, {}).get(table.id)
    return taken is not None and taken.is_active and taken.session is db.session()


def lock_rows(table: Table) -> None:
    """Serialise writes that add or remove rows of one table, and reload its position keys.

    The table was usually loaded before the lock: another writer may have changed ``pos_gaps``
    and ``row_count`` since, so they are read again under it. A table loaded by
    ``get_table_or_404(lock="update")`` in the same open transaction already holds the lock and
    was read under it (nobody else can have changed it since), so the lock is not taken twice.
    """
    if holds_row_lock(table):
        return
    db.session.flush()
    db.session.execute(
        select(Table).where(Table.id == table.id).with_for_update().execution_options(populate_existing=True)
    )
    _note_row_lock(table)


def next_pos(table: Table) -> int:
    """Return the ``pos`` of a row appended now (call under ``lock_rows``)."""
    _, last = storage.sequence_bounds(table.storage_name, "pos")
    return table.pos_base if last is None else last + 1


# --- stale views -----------------------------------------------------------------------------------


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


# Tables this transaction read to have no fresh ordered view (``note_no_fresh_orders``).
_NO_FRESH_ORDERS = "morket_tables_no_fresh_orders"


def _non_empty(value: Any) -> sa.ColumnElement[bool]:
    empty, null = sa.literal_column("'[]'::jsonb", JSONB), sa.literal_column("'null'::jsonb", JSONB)
    return sa.func.coalesce(value, empty).not_in([empty, null])


def fresh_orders_exist(table_id: Any) -> sa.ColumnElement[bool]:
    """SQL: whether the table has a sorted or filtered view whose order is fresh (the views
    ``mark_views_stale`` would mark), to fold into another query of the same transaction."""
    return sa.exists().where(
        View.table_id == table_id,
        View.order_stale.is_(False),
        sa.or_(_non_empty(View.sort), _non_empty(View.filters["conditions"])),
    )


def note_no_fresh_orders(table_id: int) -> None:
    """Remember, until this transaction ends, that ``fresh_orders_exist`` was false for the table:
    ``mark_views_stale`` then has no view to read."""
    db.session.info.setdefault(_NO_FRESH_ORDERS, set()).add(table_id)


def forget_no_fresh_orders(table_id: int) -> None:
    """A view of the table got a fresh order in this transaction: ``mark_views_stale`` reads again."""
    db.session.info.get(_NO_FRESH_ORDERS, set()).discard(table_id)


@event.listens_for(Session, "after_commit")
@event.listens_for(Session, "after_rollback")
def _forget_no_fresh_orders(session: Session) -> None:
    session.info.pop(_NO_FRESH_ORDERS, None)


def mark_views_stale(workspace: Workspace, table: Table, column_ids: Iterable[int] | None) -> None:
    """Mark the ordered views whose order may have changed for a rebuild; None means rows were added."""
    if table.id in db.session.info.get(_NO_FRESH_ORDERS, ()):
        return
    changed_ids = None if column_ids is None else set(column_ids)
    text_columns = {c.id for c in table.columns if c.type in TEXT_LIKE}
    changed = False
    for view in list_views(workspace, table):
        if not view.is_ordered or view.order_stale:
            continue
        used, searches = _referenced_columns(view)
        if changed_ids is None or used & changed_ids or (searches and changed_ids & text_columns):
            view.order_stale = True
            changed = True
    if changed:
        db.session.flush()
