"""Quick search of a table as a window: the matching rows in the default order, and their count."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy import select

from morket.core.errors import NotFound, ValidationFailed
from morket.extensions import db
from morket.tables import service, storage
from morket.tables.cells import CellError, check_characters
from morket.tables.filters import search_clause
from morket.tables.models import Table


def search_window(
    workspace, actor, table: Table, query: str, start: int, limit: int
) -> tuple[list[service.WindowRow], int]:  # noqa: ANN001
    """Return the matches at [start, start + limit) among the rows containing ``query``, and the match count.

    Positions are ranks among the matches (0 is the first match), so the grid numbers and scrolls
    a search result like any other view.
    """
    if table.workspace_id != workspace.id:
        raise NotFound("That table does not exist.")
    if not isinstance(query, str) or not query.strip() or len(query) > 200:
        raise ValidationFailed("Search for 1 to 200 characters of text.", fields={"q": ["1 to 200 characters"]})
    try:
        check_characters(query)
    except CellError as exc:
        raise ValidationFailed(f"Search: {exc}", fields={"q": [str(exc)]}) from exc
    start, limit = service._window_bounds(start, limit)  # noqa: SLF001 - the one definition of window bounds
    store = storage.storage_for(table)
    rows = store.rows
    match = search_clause(query.strip(), store)
    found = db.session.execute(
        select(rows.c.id, *store.columns.values(), rows.c.cell_state)
        .where(match)
        .order_by(rows.c.pos)
        .offset(start)
        .limit(limit)
    ).all()
    total = db.session.execute(select(sa.func.count()).select_from(rows).where(match)).scalar_one()
    return [service.WindowRow(r[0], start + i, tuple(r[1:-1]), r[-1]) for i, r in enumerate(found)], total
