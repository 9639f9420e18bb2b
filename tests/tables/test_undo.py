"""Undo and redo of every grid edit, compared with the database; the 50-step cap; other users' changes kept."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest
from sqlalchemy import text

from morket.core.errors import NotFound
from morket.tables import editing, service, undo
from morket.tables.undo import UndoConflict, redo_next, undo_depth, undo_last
from morket.workspaces.models import Membership
from tests.support.seeding import seed_rows
from tests.tables.conftest import _workspace_and_user


def _state(workspace, user, table) -> list[tuple]:
    """Every row of the table as (id, position, cells), in the default order, read from PostgreSQL."""
    rows, start = [], 0
    while True:
        window = service.read_window(workspace, user, table, None, start, service.MAX_WINDOW)
        rows.extend((r.id, r.position, r.cells) for r in window)
        if len(window) < service.MAX_WINDOW:
            return rows
        start += len(window)


def _ids(workspace, user, table, start: int, count: int) -> list[int]:
    return [r.id for r in service.read_window(workspace, user, table, None, start, count)]


def _cols(table):
    return {c.name: c.id for c in table.live_columns}


@pytest.fixture
def small(db, owner):
    """A 12-row table with five typed columns."""
    workspace, user = owner
    from tests.tables.conftest import BASIC_COLUMNS

    table = service.create_table(workspace, user, "Small", columns=BASIC_COLUMNS)
    seed_rows(workspace, user, table, 12, seed=3)
    return table


@pytest.fixture
def colleague(db, owner):
    """A second editor of workspace A."""
    workspace, _ = owner
    _, user = _workspace_and_user(db, "colleague")
    db.session.add(Membership(workspace_id=workspace.id, user_id=user.id, role="member"))
    db.session.flush()
    return user


def _round_trip(workspace, user, table, change) -> None:
    """Apply ``change``; undo must restore the database exactly, redo must restore the changed state."""
    before = _state(workspace, user, table)
    change()
    after = _state(workspace, user, table)
    assert after != before
    assert undo_last(workspace, user, table) is not None
    assert _state(workspace, user, table) == before
    assert redo_next(workspace, user, table) is not None
    assert _state(workspace, user, table) == after
    assert undo_last(workspace, user, table) is not None
    assert _state(workspace, user, table) == before


def test_cell_edit_round_trips(db, owner, small):
    workspace, user = owner
    row = _ids(workspace, user, small, 4, 1)[0]
    _round_trip(
        workspace,
        user,
        small,
        lambda: editing.save_cell(workspace, user, small, row, _cols(small)["Employees"], "1,234.5"),
    )


def test_paste_with_added_rows_round_trips(db, owner, small):
    workspace, user = owner
    cols = _cols(small)
    rows = _ids(workspace, user, small, 10, 2)
    block = editing.parse_tsv("Acme\t10\nGlobex\t20\nInitech\t30\nHooli\t40\n")
    _round_trip(
        workspace, user, small, lambda: editing.paste_block(workspace, user, small, None, rows, cols["Company"], block)
    )
    assert service.count_rows(workspace, user, small) == 12


def test_fill_and_clear_round_trip(db, owner, small):
    workspace, user = owner
    cols = _cols(small)
    rows = _ids(workspace, user, small, 2, 5)
    chosen = [cols["Company"], cols["Stage"], cols["Founded"], cols["Active"]]
    _round_trip(workspace, user, small, lambda: editing.fill_down(workspace, user, small, None, rows, chosen))
    _round_trip(workspace, user, small, lambda: editing.clear_cells(workspace, user, small, None, rows, chosen))


def test_added_rows_round_trip_at_the_end_and_after_a_row(db, owner, small):
    workspace, user = owner
    anchor = _ids(workspace, user, small, 3, 1)[0]
    _round_trip(workspace, user, small, lambda: editing.add_rows(workspace, user, small, 2))
    _round_trip(workspace, user, small, lambda: editing.add_rows(workspace, user, small, 3, after_row_id=anchor))
    ids = editing.add_rows(workspace, user, small, 2, after_row_id=anchor)
    assert _ids(workspace, user, small, 4, 2) == ids


def test_deleted_rows_come_back_at_their_positions_with_their_values(db, owner, small):
    workspace, user = owner
    doomed = [_ids(workspace, user, small, p, 1)[0] for p in (0, 1, 5, 11)]
    _round_trip(workspace, user, small, lambda: editing.remove_rows(workspace, user, small, doomed))
    assert small.row_count == 12 == service.count_rows(workspace, user, small)


def test_undoing_a_delete_puts_rows_back_in_their_gaps_without_moving_others(db, owner, small):
    workspace, user = owner
    keys = f"SELECT id, pos FROM ut.{small.storage_name} ORDER BY pos"  # noqa: S608 - generated name
    before = db.session.execute(text(keys)).all()
    doomed = [before[4][0], before[5][0], before[9][0]]
    editing.remove_rows(workspace, user, small, doomed)
    assert len(small.pos_gaps) == 3, "the delete renumbered the rows"
    undo_last(workspace, user, small)
    assert db.session.execute(text(keys)).all() == before, "rows moved, or came back under other keys"
    assert small.pos_gaps == []


def test_a_sorted_view_sees_rows_that_undo_brings_back(db, owner, small):
    workspace, user = owner
    view = service.create_view(workspace, user, small, "By name", sort=[{"column_id": _cols(small)["Company"]}])
    before = [r.id for r in service.read_window(workspace, user, small, view, 0, 50)]
    editing.remove_rows(workspace, user, small, before[3:6])
    assert len(service.read_window(workspace, user, small, view, 0, 50)) == 9
    undo_last(workspace, user, small)
    assert [r.id for r in service.read_window(workspace, user, small, view, 0, 50)] == before


def test_only_the_newest_fifty_steps_are_kept_and_a_new_step_clears_redo(db, owner, small):
    workspace, user = owner
    row, column = _ids(workspace, user, small, 0, 1)[0], _cols(small)["Employees"]
    for n in range(1, 56):
        editing.save_cell(workspace, user, small, row, column, str(n))
    assert undo_depth(workspace, user, small) == (undo.MAX_STEPS, 0)
    for _ in range(undo.MAX_STEPS):
        assert undo_last(workspace, user, small) is not None
    assert undo_last(workspace, user, small) is None
    assert service.get_row(workspace, user, small, row).values(small)[column] == Decimal(5)
    assert undo_depth(workspace, user, small) == (0, undo.MAX_STEPS)
    redo_next(workspace, user, small)
    editing.save_cell(workspace, user, small, row, column, "999")
    assert undo_depth(workspace, user, small) == (2, 0)
    assert redo_next(workspace, user, small) is None


def test_undo_leaves_a_colleagues_later_change_and_restores_the_rest(db, owner, colleague, small):
    workspace, me = owner
    cols = _cols(small)
    rows = _ids(workspace, me, small, 0, 3)
    originals = [service.get_row(workspace, me, small, r).values(small)[cols["Company"]] for r in rows]
    editing.paste_block(workspace, me, small, None, rows, cols["Company"], [["Mine A"], ["Mine B"], ["Mine C"]])
    editing.save_cell(workspace, colleague, small, rows[1], cols["Company"], "Theirs")
    with pytest.raises(UndoConflict, match="someone else changed it"):
        undo_last(workspace, me, small)
    now = [service.get_row(workspace, me, small, r).values(small)[cols["Company"]] for r in rows]
    assert now == [originals[0], "Theirs", originals[2]]
    assert undo_depth(workspace, me, small) == (0, 1)
    assert undo_depth(workspace, colleague, small) == (1, 0)


def test_undoing_added_rows_keeps_a_row_a_colleague_filled_in(db, owner, colleague, small):
    workspace, me = owner
    first, second = editing.add_rows(workspace, me, small, 2)
    editing.save_cell(workspace, colleague, small, second, _cols(small)["Company"], "Their lead")
    with pytest.raises(UndoConflict):
        undo_last(workspace, me, small)
    with pytest.raises(NotFound):
        service.get_row(workspace, me, small, first)
    assert service.get_row(workspace, me, small, second).values(small)[_cols(small)["Company"]] == "Their lead"
    assert service.count_rows(workspace, me, small) == 13


def test_each_user_undoes_only_their_own_steps(db, owner, colleague, small):
    workspace, me = owner
    row, column = _ids(workspace, me, small, 0, 1)[0], _cols(small)["Founded"]
    editing.save_cell(workspace, me, small, row, column, "2020-02-29")
    assert undo_last(workspace, colleague, small) is None
    assert service.get_row(workspace, me, small, row).values(small)[column] == date(2020, 2, 29)


def test_another_workspace_cannot_undo_or_push(db, owner, stranger, small):
    workspace, me = owner
    theirs, intruder = stranger
    editing.save_cell(workspace, me, small, _ids(workspace, me, small, 0, 1)[0], _cols(small)["Company"], "x")
    for attempt in (
        lambda: undo_last(theirs, intruder, small),
        lambda: redo_next(theirs, intruder, small),
        lambda: undo.push_undo(theirs, intruder, small, "cell", {"cells": []}, {"cells": []}),
        lambda: editing.remove_rows(theirs, intruder, small, _ids(workspace, me, small, 0, 1)),
    ):
        with pytest.raises(NotFound):
            attempt()
    assert undo_depth(workspace, me, small) == (1, 0)
