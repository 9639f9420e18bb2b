"""Tenant isolation at the service layer, and column lifecycle: cap, delete, restore, rewrite."""

from __future__ import annotations

import pytest
from sqlalchemy import text

from morket.core.errors import NotFound, ValidationFailed
from morket.tables import service, storage
from tests.support.seeding import seed_rows


def test_another_workspace_cannot_reach_the_table(db, owner, stranger, seeded):
    theirs, intruder = stranger
    mine, me = owner
    column = seeded.live_columns[0]
    row = service.read_window(mine, me, seeded, None, 0, 1)[0]
    view = service.list_views(mine, seeded)[0]
    attempts = [
        lambda: service.get_table_or_404(theirs, seeded.id),
        lambda: service.read_window(theirs, intruder, seeded, None, 0, 10),
        lambda: service.count_rows(theirs, intruder, seeded),
        lambda: service.get_row(theirs, intruder, seeded, row.id),
        lambda: service.search_rows(theirs, intruder, seeded, "a"),
        lambda: service.insert_rows(theirs, intruder, seeded, [{column.id: "x"}]),
        lambda: service.update_cell(theirs, intruder, seeded, row.id, column.id, "pwned"),
        lambda: service.delete_rows(theirs, intruder, seeded, [row.id]),
        lambda: service.add_column(theirs, intruder, seeded, "Evil", "text"),
        lambda: service.rename_column(theirs, intruder, seeded, column.id, "Evil"),
        lambda: service.delete_column(theirs, intruder, seeded, column.id),
        lambda: service.rename_table(theirs, intruder, seeded, "Evil"),
        lambda: service.create_view(theirs, intruder, seeded, "Evil"),
        lambda: service.get_view_or_404(theirs, seeded, view.id),
        lambda: service.read_window(mine, me, seeded, _foreign_view(theirs, intruder), 0, 10),
        lambda: seed_rows(theirs, intruder, seeded, 5),
        lambda: service.delete_table(theirs, intruder, seeded),
    ]
    for attempt in attempts:
        with pytest.raises(NotFound):
            attempt()
    assert seeded.id not in [t.id for t in service.list_tables(theirs)]
    assert service.count_rows(mine, me, seeded) == 1000
    assert service.get_row(mine, me, seeded, row.id).cells == row.cells
    assert [c.name for c in seeded.live_columns][0] == column.name


def _foreign_view(workspace, user):
    table = service.create_table(workspace, user, "Theirs", columns=[{"name": "A", "type": "text"}])
    return service.create_view(workspace, user, table, "Theirs sorted", sort=[{"column_id": table.live_columns[0].id}])


def test_missing_rows_and_columns_are_not_found(db, owner, seeded):
    workspace, user = owner
    with pytest.raises(NotFound):
        service.update_cell(workspace, user, seeded, 10**12, seeded.live_columns[0].id, "x")
    with pytest.raises(NotFound):
        service.update_cell(workspace, user, seeded, 1, 10**12, "x")
    with pytest.raises(NotFound):
        service.get_table_or_404(workspace, 10**12)
    assert service.delete_rows(workspace, user, seeded, [10**12]) == 0


def test_column_cap(db, owner):
    workspace, user = owner
    table = service.create_table(workspace, user, "Wide")
    for i in range(storage.MAX_USER_COLUMNS):
        service.add_column(workspace, user, table, f"C{i}", "number")
    with pytest.raises(ValidationFailed, match="at most 100 columns"):
        service.add_column(workspace, user, table, "One too many", "text")


def test_column_names_and_types_are_checked(db, owner, seeded):
    workspace, user = owner
    with pytest.raises(ValidationFailed, match="already a column named"):
        service.add_column(workspace, user, seeded, "company", "text")
    with pytest.raises(ValidationFailed, match="Unknown column type"):
        service.add_column(workspace, user, seeded, "Odd", "spreadsheet")
    with pytest.raises(ValidationFailed, match="1 to 120"):
        service.add_column(workspace, user, seeded, "  ", "text")
    with pytest.raises(ValidationFailed, match="distinct"):
        service.add_column(workspace, user, seeded, "Tier", "single_select", config={"options": ["A", "a"]})
    with pytest.raises(ValidationFailed, match="a list"):
        service.add_column(workspace, user, seeded, "Tier", "single_select", config={"options": "A,B"})
    with pytest.raises(ValidationFailed, match="must be an object"):
        service.add_column(workspace, user, seeded, "Tier", "text", config=["x"])


def test_deleted_column_is_restorable_with_its_cells(db, owner, seeded):
    workspace, user = owner
    company = next(c for c in seeded.live_columns if c.name == "Company")
    before = service.read_window(workspace, user, seeded, None, 0, 5)
    names_before = [r.values(seeded)[company.id] for r in before]
    version = seeded.version
    service.delete_column(workspace, user, seeded, company.id)
    assert seeded.version == version + 1
    after = service.read_window(workspace, user, seeded, None, 0, 5)
    assert len(after[0].cells) == len(before[0].cells) - 1
    with pytest.raises(ValidationFailed, match="No column"):
        service.insert_rows(workspace, user, seeded, [{"Company": "gone"}])
    service.add_column(workspace, user, seeded, "Company", "text")
    restored = service.restore_column(workspace, user, seeded, company.id)
    assert restored.name == "Company (restored)"
    again = service.read_window(workspace, user, seeded, None, 0, 5)
    assert [r.values(seeded)[company.id] for r in again] == names_before


def test_rename_column_and_table(db, owner, seeded):
    workspace, user = owner
    company = next(c for c in seeded.live_columns if c.name == "Company")
    service.rename_column(workspace, user, seeded, company.id, "Account")
    service.rename_table(workspace, user, seeded, "Accounts 2026")
    ids = service.insert_rows(workspace, user, seeded, [{"Account": "Renamed"}])
    assert service.get_row(workspace, user, seeded, ids[0]).values(seeded)[company.id] == "Renamed"
    assert service.get_table_or_404(workspace, seeded.id).name == "Accounts 2026"


def _attnum(db, table) -> int:
    return db.session.execute(
        text("SELECT max(attnum) FROM pg_attribute WHERE attrelid = CAST(:r AS regclass)"),
        {"r": f"ut.{table.storage_name}"},
    ).scalar_one()


def test_dropped_columns_trigger_a_rewrite_before_the_limit(db, owner, seeded, monkeypatch):
    workspace, user = owner
    monkeypatch.setattr(storage, "REWRITE_AT_ATTNUM", 11)
    monkeypatch.setattr(service, "MAX_RETAINED_DELETED_COLUMNS", 0)

    def everything():
        return [row for start in (0, 500) for row in service.read_window(workspace, user, seeded, None, start, 500)]

    before = everything()
    for i in range(3):
        column = service.add_column(workspace, user, seeded, f"Scratch {i}", "text")
        service.delete_column(workspace, user, seeded, column.id)
    assert _attnum(db, seeded) == 11, "id, pos, cell_state, 5 columns and 3 dropped ones"
    service.add_column(workspace, user, seeded, "After rewrite", "number")
    assert _attnum(db, seeded) == 9, "the table was not rewritten without its dropped columns"
    after = everything()
    assert [(r.id, r.cells[:5]) for r in after] == [(r.id, r.cells) for r in before]
    new_id = service.insert_rows(workspace, user, seeded, [{"Company": "Fresh", "After rewrite": 5}])[0]
    assert new_id > max(r.id for r in before), "row ids must keep growing after a rewrite"
    assert service.delete_rows(workspace, user, seeded, [before[0].id]) == 1
    assert service.count_rows(workspace, user, seeded) == 1000


def test_delete_table_drops_its_storage(db, owner, seeded):
    workspace, user = owner
    view = service.create_view(workspace, user, seeded, "S", sort=[{"column_id": seeded.live_columns[0].id}])
    service.read_window(workspace, user, seeded, view, 0, 1)
    service.delete_table(workspace, user, seeded)
    left = db.session.execute(
        text("SELECT count(*) FROM pg_tables WHERE schemaname = 'ut' AND tablename LIKE :p"),
        {"p": f"%\\_{seeded.id}%"},
    ).scalar_one()
    assert left == 0
    with pytest.raises(NotFound):
        service.get_table_or_404(workspace, seeded.id)
