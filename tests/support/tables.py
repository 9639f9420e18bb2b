"""A committed table for browser tests: an owner, their workspace and a table with rows (and formulas).

Browser tests run against a live server, so their data must be committed; ``live_server``
truncates it afterwards.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from tests.browser.conftest import committed_owner


def committed_table(
    app,
    *,
    owner: dict[str, str],
    name: str,
    columns: list[dict[str, Any]],
    rows: list[dict[str, Any]],
    formulas: Sequence[tuple[str, str]] = (),
) -> tuple[str, int]:
    """Commit ``owner`` (committed_owner's keywords), their workspace and a table; return (its page path, its id).

    ``formulas`` are (column name, expression) pairs added after the rows.
    """
    from morket.extensions import db
    from morket.tables import service
    from morket.tables.column_service import add_table_column

    with app.app_context():
        workspace, user = committed_owner(**owner)
        table = service.create_table(workspace, user, name, columns=columns)
        service.insert_rows(workspace, user, table, rows)
        for column, expression in formulas:
            add_table_column(workspace, user, table, column, "formula", config={"expression": expression})
        db.session.commit()
        return f"/w/{workspace.slug}/tables/{table.id}", table.id
