"""Appending rows: typed values stored as typed, ids in the order sent, positions after the last row."""

from __future__ import annotations

import datetime
from decimal import Decimal

import sqlalchemy as sa

from morket.tables import rows, storage
from morket.tables import service as tables

COLUMNS = [
    {"name": "Company", "type": "text"},
    {"name": "Email", "type": "email"},
    {"name": "Employees", "type": "number"},
    {"name": "Founded", "type": "date"},
    {"name": "Active", "type": "checkbox"},
]


def _stored(db, table) -> list[tuple]:
    store = storage.storage_for(table)
    names = [store.columns[c.id] for c in table.live_columns]
    query = sa.select(store.rows.c.id, store.rows.c.pos, *names).order_by(store.rows.c.pos)
    return [tuple(r) for r in db.session.execute(query)]


def test_rows_are_stored_typed_in_the_order_sent_after_the_last_position(db, owner):
    workspace, user = owner
    table = tables.create_table(workspace, user, "Appends", columns=COLUMNS)
    first = rows.insert_rows(workspace, user, table, [{"Company": "Acme", "Employees": 12}])
    sent = [
        {"Company": "Beta", "Email": "Ann@Beta.io", "Employees": "2.5", "Founded": "2019-04-01", "Active": True},
        {"Company": "Gamma", "Employees": 7, "Active": "no"},  # an int beside a decimal in one column
        {"Company": "Delta's"},
    ]
    ids = rows.insert_rows(workspace, user, table, sent)
    db.session.flush()
    db.session.expire(table)
    assert table.row_count == 4  # as stored
    stored = _stored(db, table)
    assert [r[0] for r in stored] == first + ids and ids == sorted(ids)
    positions = [r[1] for r in stored]
    assert positions == list(range(positions[0], positions[0] + 4))  # dense, after the first row
    assert stored[1][2:] == ("Beta", "Ann@beta.io", Decimal("2.5"), datetime.date(2019, 4, 1), True)
    assert stored[2][2:] == ("Gamma", None, Decimal(7), None, False)
    assert stored[3][2:] == ("Delta's", None, None, None, None)


def test_rows_with_a_list_column_are_appended_too(db, owner):
    workspace, user = owner
    columns = [{"name": "Company", "type": "text"},
               {"name": "Tags", "type": "multi_select", "config": {"options": ["a", "b"]}}]  # fmt: skip
    table = tables.create_table(workspace, user, "Tagged", columns=columns)
    ids = rows.insert_rows(workspace, user, table, [{"Company": "Acme", "Tags": ["a", "b"]}, {"Company": "Beta"}])
    stored = _stored(db, table)
    assert [r[0] for r in stored] == ids
    assert [r[2:] for r in stored] == [("Acme", ["a", "b"]), ("Beta", None)]


def test_values_json_escapes_or_cannot_hold_are_stored_exactly(db, owner):
    workspace, user = owner
    columns = [{"name": "Note", "type": "text"}, {"name": "At", "type": "datetime"},
               {"name": "Amount", "type": "number"}]  # fmt: skip
    table = tables.create_table(workspace, user, "Exact", columns=columns)
    note = 'Quote " back\\slash \u00e9t\u00e9 \U0001f600 {"a": 1} \n tab\t'
    sent = [
        {"Note": note, "At": "2024-02-29T23:59:58.123456+02:00", "Amount": "0.000000000001"},
        {"Note": "", "Amount": "-999999999999999999"},
    ]
    rows.insert_rows(workspace, user, table, sent)
    stored = _stored(db, table)
    assert stored[0][2] == note
    assert stored[0][3] == datetime.datetime(2024, 2, 29, 21, 59, 58, 123456, tzinfo=datetime.UTC)
    assert stored[0][4] == Decimal("0.000000000001")
    assert stored[1][4] == Decimal("-999999999999999999") and stored[1][3] is None
