"""Windows of rows at any position, in the default order and in sorted and filtered views."""
# ruff: noqa: S608 - the independent record is plain SQL over generated (integer) table names

from __future__ import annotations

import pytest
from sqlalchemy import select, text

from morket.core.errors import ValidationFailed
from morket.core.models import OutboxMessage
from morket.tables import service, storage, tasks


def _ids(rows) -> list[int]:
    return [r.id for r in rows]


def _plain(db, sql: str, **params) -> list[int]:
    """An independent record: the row ids straight from PostgreSQL, without Morket's code."""
    return list(db.session.execute(text(sql), params).scalars())


def _col(table, name: str) -> str:
    return next(c for c in table.live_columns if c.name == name).storage_name


@pytest.mark.parametrize("start", [0, 1, 450, 900, 990])
def test_default_order_window_matches_plain_sql(db, owner, seeded, start):
    workspace, user = owner
    rows = service.read_window(workspace, user, seeded, None, start, 100)
    expected = _plain(db, f"SELECT id FROM ut.{seeded.storage_name} ORDER BY pos LIMIT 100 OFFSET :o", o=start)
    assert _ids(rows) == expected
    assert [r.position for r in rows] == list(range(start, start + len(expected)))
    assert len(rows) == min(100, 1000 - start)


def test_window_past_the_end_is_empty(db, owner, seeded):
    workspace, user = owner
    assert service.read_window(workspace, user, seeded, None, 1000, 50) == []


def test_window_values_are_typed_cells(db, owner, seeded):
    workspace, user = owner
    row = service.read_window(workspace, user, seeded, None, 0, 1)[0]
    by_name = {c.name: row.values(seeded)[c.id] for c in seeded.live_columns}
    assert isinstance(by_name["Company"], str)
    assert by_name["Stage"] in ("Lead", "Customer", "Churned")
    assert isinstance(by_name["Active"], bool)


def test_bad_window_bounds_are_clear_errors(db, owner, seeded):
    workspace, user = owner
    with pytest.raises(ValidationFailed, match="0 or more"):
        service.read_window(workspace, user, seeded, None, -1, 10)
    with pytest.raises(ValidationFailed, match="1 to 500"):
        service.read_window(workspace, user, seeded, None, 0, 501)


def _sorted_filtered_view(workspace, user, table):
    employees = next(c for c in table.live_columns if c.name == "Employees")
    company = next(c for c in table.live_columns if c.name == "Company")
    stage = next(c for c in table.live_columns if c.name == "Stage")
    return service.create_view(
        workspace,
        user,
        table,
        "Big leads",
        sort=[{"column_id": employees.id, "dir": "desc"}, {"column_id": company.id, "dir": "asc"}],
        filters={
            "op": "and",
            "conditions": [
                {"column_id": employees.id, "operator": "gt", "value": 20000},
                {"column_id": stage.id, "operator": "any_of", "value": ["Lead", "Customer"]},
            ],
        },
    )


def _expected_sorted(db, table) -> list[int]:
    emp, comp, stage = _col(table, "Employees"), _col(table, "Company"), _col(table, "Stage")
    return _plain(
        db,
        f"SELECT id FROM ut.{table.storage_name} WHERE {emp} > 20000 AND {stage} IN ('Lead', 'Customer') "
        f"ORDER BY {emp} DESC NULLS LAST, {comp} ASC NULLS LAST, id",
    )


def test_sorted_filtered_view_windows_and_count(db, owner, seeded):
    workspace, user = owner
    view = _sorted_filtered_view(workspace, user, seeded)
    expected = _expected_sorted(db, seeded)
    assert 300 < len(expected) < 900
    assert service.count_rows(workspace, user, seeded, view) == len(expected)
    for start in (0, len(expected) // 2, len(expected) - 30):
        rows = service.read_window(workspace, user, seeded, view, start, 60)
        assert _ids(rows) == expected[start : start + 60]
        assert rows[0].position == start


def test_view_order_follows_inserts_edits_and_deletes(db, owner, seeded):
    workspace, user = owner
    view = _sorted_filtered_view(workspace, user, seeded)
    service.read_window(workspace, user, seeded, view, 0, 10)
    employees = next(c for c in seeded.live_columns if c.name == "Employees")

    new_ids = service.insert_rows(
        workspace, user, seeded, [{"Company": "Zeta", "Employees": 99_999, "Stage": "lead"}, {"Company": "Tiny"}]
    )
    assert service.read_window(workspace, user, seeded, view, 0, 1)[0].id == new_ids[0]

    victim = service.read_window(workspace, user, seeded, view, 5, 1)[0].id
    service.update_cell(workspace, user, seeded, victim, employees.id, 10)
    assert victim not in _ids(service.read_window(workspace, user, seeded, view, 0, 500))

    doomed = _ids(service.read_window(workspace, user, seeded, view, 3, 4))
    assert service.delete_rows(workspace, user, seeded, doomed) == 4
    expected = _expected_sorted(db, seeded)
    assert service.count_rows(workspace, user, seeded, view) == len(expected)
    for start in (0, 2, len(expected) - 10):
        assert _ids(service.read_window(workspace, user, seeded, view, start, 20)) == expected[start : start + 20]


@pytest.mark.parametrize("gap_limit", [1000, 2])
@pytest.mark.parametrize("where", ["head", "middle", "tail", "scattered"])
def test_deletes_keep_positions_right(db, owner, seeded, where, gap_limit, monkeypatch):
    """Deleted positions are remembered as gaps, then compacted away past the limit; reads stay right."""
    monkeypatch.setattr(storage, "GAP_LIMIT", gap_limit)
    workspace, user = owner
    view = _sorted_filtered_view(workspace, user, seeded)
    service.read_window(workspace, user, seeded, view, 0, 1)
    all_ids = _plain(db, f"SELECT id FROM ut.{seeded.storage_name} ORDER BY pos")
    doomed = {
        "head": all_ids[:3],
        "middle": all_ids[480:530],
        "tail": all_ids[-7:],
        "scattered": all_ids[5::97],
    }[where]
    assert service.delete_rows(workspace, user, seeded, doomed) == len(doomed)
    remaining = [i for i in all_ids if i not in set(doomed)]
    expected = _expected_sorted(db, seeded)

    def reads_right() -> None:
        assert service.count_rows(workspace, user, seeded) == len(remaining)
        for start in (0, 1, 400, len(remaining) - 50):
            got = _ids(service.read_window(workspace, user, seeded, None, start, 100))
            assert got == remaining[start : start + 100]
        some = service.read_window(workspace, user, seeded, None, 600, 3)
        assert [service.get_row(workspace, user, seeded, r.id).position for r in some] == [600, 601, 602]
        assert service.count_rows(workspace, user, seeded, view) == len(expected)
        for start in (0, 7, len(expected) - 40):
            assert _ids(service.read_window(workspace, user, seeded, view, start, 60)) == expected[start : start + 60]

    # The delete renumbers nothing, however many gaps it leaves; reads are right before and after the
    # queued compaction (run here in steps of 7 rows, each committed on its own).
    reads_right()
    if where in ("middle", "scattered"):
        assert len(seeded.pos_gaps) == len(doomed), "the delete renumbered on the request path"
    if gap_limit == 2 and len(seeded.pos_gaps) > 2:
        queued = [m.job_id for m in db.session.scalars(select(OutboxMessage).where(OutboxMessage.relayed_at.is_(None)))]
        assert f"compact-{seeded.id}-0" in queued
        monkeypatch.setattr(tasks, "COMPACT_STEP_ROWS", 7)
        tasks.compact_keys(seeded.id, 0)
        tasks.compact_keys(seeded.id, view.id)
        db.session.refresh(seeded)
        db.session.refresh(view)
        reads_right()
        assert seeded.pos_gaps == [] and view.rank_gaps == []
        stats = db.session.execute(
            text(f"SELECT max(pos) - min(pos) + 1, count(*) FROM ut.{seeded.storage_name}")
        ).one()
        assert stats[0] == stats[1], "compaction left gaps"
    ids = service.insert_rows(workspace, user, seeded, [{"Company": "After"}])
    assert _ids(service.read_window(workspace, user, seeded, None, len(remaining), 5)) == ids


def test_deleting_everything_then_inserting(db, owner, seeded):
    workspace, user = owner
    all_ids = _plain(db, f"SELECT id FROM ut.{seeded.storage_name} ORDER BY pos")
    service.delete_rows(workspace, user, seeded, all_ids[:700])
    service.delete_rows(workspace, user, seeded, all_ids[700:])
    assert service.count_rows(workspace, user, seeded) == 0
    assert service.read_window(workspace, user, seeded, None, 0, 10) == []
    ids = service.insert_rows(workspace, user, seeded, [{"Company": "A"}, {"Company": "B"}])
    assert _ids(service.read_window(workspace, user, seeded, None, 0, 10)) == ids


def test_inserts_append_at_the_end(db, owner, seeded):
    workspace, user = owner
    ids = service.insert_rows(workspace, user, seeded, [{"Company": f"New {i}"} for i in range(3)])
    rows = service.read_window(workspace, user, seeded, None, 1000, 10)
    assert _ids(rows) == ids
    assert service.count_rows(workspace, user, seeded) == 1003


def test_edit_shows_in_the_window(db, owner, seeded):
    workspace, user = owner
    company = next(c for c in seeded.live_columns if c.name == "Company")
    row = service.read_window(workspace, user, seeded, None, 500, 1)[0]
    assert service.update_cell(workspace, user, seeded, row.id, company.id, "Renamed Inc") == "Renamed Inc"
    assert service.read_window(workspace, user, seeded, None, 500, 1)[0].values(seeded)[company.id] == "Renamed Inc"


def test_quick_search_across_text_columns(db, owner, seeded):
    workspace, user = owner
    service.insert_rows(workspace, user, seeded, [{"Company": "Needle 100% _Corp"}])
    rows, total = service.search_rows(workspace, user, seeded, "needle 100% _c")
    company = next(c.id for c in seeded.live_columns if c.name == "Company")
    assert total == 1 and rows[0].values(seeded)[company].startswith("Needle")
    assert rows[0].position == 1000
    _, none = service.search_rows(workspace, user, seeded, "%")
    assert none == 1


def test_window_read_is_a_constant_number_of_statements(db, owner, seeded, query_budget):
    workspace, user = owner
    view = _sorted_filtered_view(workspace, user, seeded)
    service.read_window(workspace, user, seeded, view, 0, 10)
    for start in (0, 500):
        with query_budget(1):
            service.read_window(workspace, user, seeded, None, start, 100)
        with query_budget(1):
            service.read_window(workspace, user, seeded, view, start, 100)


def test_an_order_emptied_by_a_crash_is_rebuilt(db, owner, seeded):
    """Order tables are unlogged: crash recovery truncates them, which TRUNCATE reproduces here."""
    workspace, user = owner
    view = _sorted_filtered_view(workspace, user, seeded)
    expected = _expected_sorted(db, seeded)
    assert _ids(service.read_window(workspace, user, seeded, view, 10, 20)) == expected[10:30]
    db.session.execute(text(f"TRUNCATE ut.o_{seeded.id}_{view.id}"))
    assert _ids(service.read_window(workspace, user, seeded, view, 10, 20)) == expected[10:30]
    db.session.execute(text(f"TRUNCATE ut.o_{seeded.id}_{view.id}"))
    assert service.count_rows(workspace, user, seeded, view) == len(expected)


def test_a_view_deleted_while_its_order_is_stale_is_a_404(db, owner, seeded):
    """A read that would rebuild a view's order finds the view gone (deleted by another request): 404."""
    from morket.core.errors import NotFound

    workspace, user = owner
    view = _sorted_filtered_view(workspace, user, seeded)
    db.session.flush()
    assert view.order_stale
    db.session.execute(text("DELETE FROM table_views WHERE id = :id"), {"id": view.id})
    with pytest.raises(NotFound):
        service.read_window(workspace, user, seeded, view, 0, 20)


def test_a_large_order_gets_its_row_id_index_from_a_job(db, owner, seeded, monkeypatch):
    monkeypatch.setattr(storage, "ORDER_INDEX_AT", 100)
    workspace, user = owner
    view = _sorted_filtered_view(workspace, user, seeded)
    expected = _expected_sorted(db, seeded)
    service.read_window(workspace, user, seeded, view, 0, 1)  # builds the order
    queued = [m.job_id for m in db.session.scalars(select(OutboxMessage).where(OutboxMessage.relayed_at.is_(None)))]
    assert f"order-index-{seeded.id}-{view.id}" in queued
    tasks.index_order_rows(seeded.id, view.id)
    name = storage.order_name(seeded.id, view.id)
    assert db.session.execute(text("SELECT to_regclass(:i) IS NOT NULL"), {"i": f"ut.{name}_row"}).scalar_one()
    doomed = expected[10:13]
    assert service.delete_rows(workspace, user, seeded, doomed) == 3
    rest = [i for i in expected if i not in doomed]
    assert _ids(service.read_window(workspace, user, seeded, view, 0, 20)) == rest[:20]
