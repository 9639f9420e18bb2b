"""Quick search of a table as a window: the matching rows in the view's order, and their count."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy import select

from morket.core.errors import NotFound, ValidationFailed
from morket.core.types import Actor, Workspace
from morket.extensions import db
from morket.tables import storage
from morket.tables.cells import CellError, check_characters
from morket.tables.filters import search_clause
from morket.tables.models import Table, View
from morket.tables.windows import WindowRow, ensure_view_order, window_bounds


def search_window(
    workspace: Workspace,
    actor: Actor | None,
    table: Table,
    view: View | None,
    query: str,
    start: int,
    limit: int,
) -> tuple[list[WindowRow], int]:
    """Return the matches at [start, start + limit) among the view's rows containing ``query``, and their count.

    The view's filters and sort apply (its built order), else the default order. Positions are
    ranks among the matches (0 is the first match), so the grid numbers and scrolls a search
    result like any other window.
    """
    if table.workspace_id != workspace.id or (view is not None and view.table_id != table.id):
        raise NotFound("That table does not exist.")
    if not isinstance(query, str) or not query.strip() or len(query) > 200:
        raise ValidationFailed("Search for 1 to 200 characters of text.", fields={"q": ["1 to 200 characters"]})
    try:
        check_characters(query)
    except CellError as exc:
        raise ValidationFailed(f"Search: {exc}", fields={"q": [str(exc)]}) from exc
    start, limit = window_bounds(start, limit)
    store = storage.storage_for(table)
    rows = store.rows
    match = search_clause(query.strip(), store)
    cols = [rows.c.id, *store.columns.values(), rows.c.cell_state]
    if view is not None and view.is_ordered:
        ensure_view_order(workspace, table, view)
        order = storage.order_table(table.id, view.id)
        source = order.join(rows, rows.c.id == order.c.row_id)
        key = order.c.rank
    else:
        source, key = rows, rows.c.pos
    found = db.session.execute(
        select(*cols).select_from(source).where(match).order_by(key).offset(start).limit(limit)
    ).all()
    total = db.session.execute(select(sa.func.count()).select_from(source).where(match)).scalar_one()
    return [WindowRow(r[0], start + i, tuple(r[1:-1]), r[-1]) for i, r in enumerate(found)], total
