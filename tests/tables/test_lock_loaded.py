"""Taking the row lock of a table read earlier: its own row is read again under the lock, its columns
only when the table's layout changed since (``tables.version``)."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from morket.core.errors import NotFound, ValidationFailed
from morket.tables import access, rows
from morket.tables import service as tables

COLUMNS = [{"name": "Company", "type": "text"}, {"name": "Employees", "type": "number"}]


def _behind_its_back(db, sql: str, **params) -> None:
    """Another writer's change: SQL the session's loaded objects know nothing of."""
    db.session.execute(sa.text(sql), params)


def test_the_row_is_read_again_under_the_lock_and_rows_go_after_the_last(db, owner):
    workspace, user = owner
    table = tables.create_table(workspace, user, "Loaded", columns=COLUMNS)
    rows.insert_rows(workspace, user, table, [{"Company": "Acme"}])
    db.session.flush()
    # Someone else appended two rows and moved the base since the table was read.
    _behind_its_back(
        db, "UPDATE tables SET row_count = row_count + 2, pos_base = pos_base + 5 WHERE id = :id", id=table.id
    )
    locked = access.lock_loaded_table(workspace, table)
    assert locked is table and access.holds_row_lock(table)
    assert table.row_count == 3 and table.pos_base == 5
    rows.insert_rows(workspace, user, table, [{"Company": "Beta", "Employees": 2}])
    assert table.row_count == 4


def test_a_changed_layout_reads_the_columns_again(db, owner):
    workspace, user = owner
    table = tables.create_table(workspace, user, "Relaid", columns=COLUMNS)
    db.session.flush()
    employees = next(c for c in table.live_columns if c.name == "Employees")
    # Someone else deleted a column (which bumps the version) since the table was read.
    _behind_its_back(db, "UPDATE table_columns SET deleted_at = now() WHERE id = :id", id=employees.id)
    _behind_its_back(db, "UPDATE tables SET version = version + 1 WHERE id = :id", id=table.id)
    locked = access.lock_loaded_table(workspace, table)
    assert [c.name for c in locked.live_columns] == ["Company"]
    with pytest.raises(ValidationFailed, match="Employees"):
        rows.insert_rows(workspace, user, locked, [{"Company": "Acme", "Employees": 3}])


def test_another_workspace_or_a_deleted_table_is_not_found(db, owner, stranger):
    workspace, user = owner
    other, _ = stranger
    table = tables.create_table(workspace, user, "Mine", columns=COLUMNS)
    db.session.flush()
    with pytest.raises(NotFound):
        access.lock_loaded_table(other, table)
    _behind_its_back(db, "DELETE FROM tables WHERE id = :id", id=table.id)
    with pytest.raises(NotFound):
        access.lock_loaded_table(workspace, table)
