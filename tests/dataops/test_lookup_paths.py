"""Lookups stay current through the data operations: CSV import, bulk find-and-replace, dedupe merge."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from morket.dataops import bulk, dedupe
from morket.extensions import db as _db
from morket.tables import column_service, lookups, service, storage
from tests.dataops.conftest import run_import


def _col(table, name: str) -> int:
    return next(c.id for c in table.live_columns if c.name == name)


def _values(table, column_id: int) -> list:
    store = storage.storage_for(table)
    return [r[0] for r in _db.session.execute(sa.select(store.columns[column_id]).order_by(store.rows.c.pos))]


@pytest.fixture
def pair(db, owner):
    """People (Email) with a lookup into Companies (Email → Name), and the lookup column."""
    workspace, user = owner
    companies = service.create_table(
        workspace, user, "Companies", columns=[{"name": "Email", "type": "email"}, {"name": "Name", "type": "text"}]
    )
    service.insert_rows(workspace, user, companies, [{"Email": "ann@acme.com", "Name": "Acme"}])
    people = service.create_table(workspace, user, "People", columns=[{"name": "Email", "type": "email"}])
    service.insert_rows(
        workspace, user, people, [{"Email": "Ann@Acme.com"}, {"Email": "bob@globex.com"}, {"Email": "bob@globex.com"}]
    )
    config = {
        "source_table_id": companies.id,
        "source_key_column_id": _col(companies, "Email"),
        "key_column_id": _col(people, "Email"),
        "field_column_id": _col(companies, "Name"),
        "mode": "first",
    }
    column, _ = column_service.add_table_column(workspace, user, people, "Company", "lookup", config=config)
    db.session.flush()
    return workspace, user, people, companies, column


def test_a_csv_import_into_the_source_table_recomputes_the_lookup(db, pair):
    workspace, user, people, companies, column = pair
    data = b"email,name\nbob@globex.com,Globex\n"
    mapping = [
        {"source": 0, "target": str(_col(companies, "Email"))},
        {"source": 1, "target": str(_col(companies, "Name"))},
    ]
    run = run_import(db, workspace, user, data, table=companies, mapping=mapping)
    assert run.status == "done", run.message
    db.session.expire_all()
    people = service.get_table_or_404(workspace, people.id)
    assert _values(people, column.id) == ["Acme", "Globex", "Globex"]


def test_bulk_replace_in_the_source_table_recomputes_the_lookup(db, pair):
    workspace, user, people, companies, column = pair
    bulk.replace_in_column(workspace, user, companies, _col(companies, "Name"), "Acme", "Acme Inc")
    assert _values(people, column.id) == ["Acme Inc", None, None]
    bulk.replace_in_column(
        workspace, user, people, _col(people, "Email"), "bob@globex.com", "ann@acme.com", whole_cell=True
    )
    assert _values(people, column.id) == ["Acme Inc", "Acme Inc", "Acme Inc"]


def test_a_dedupe_merge_recomputes_the_lookups_that_read_the_table(db, pair):
    workspace, user, people, companies, column = pair
    service.insert_rows(workspace, user, companies, [{"Email": "ANN@acme.com", "Name": "Acme (dup)"}])
    # A count shows the merge too: two matches before, one after.
    count_config = {**column.config, "mode": "count"}
    count_config.pop("field_column_id")
    count_config.pop("result_type")
    counted, _ = column_service.add_table_column(workspace, user, people, "Matches", "lookup", config=count_config)
    assert _values(people, counted.id) == ["2", "0", "0"]
    parts = dedupe.dedupe_key(companies, [_col(companies, "Email")])
    dedupe.merge_duplicates(workspace, user, companies, parts, keep="first")
    assert _values(people, counted.id) == ["1", "0", "0"]
    assert _values(people, column.id) == ["Acme", None, None]


def test_a_large_fill_runs_as_a_job(db, pair, monkeypatch, run_jobs):
    workspace, user, people, companies, column = pair
    monkeypatch.setattr(lookups, "INLINE_FILL_ROWS", 1)
    config = {k: v for k, v in column.config.items() if k != "result_type"}
    added, job = column_service.add_table_column(workspace, user, people, "Company again", "lookup", config=config)
    assert job is not None and job.kind == "lookup"
    assert _values(people, added.id) == [None, None, None]
    db.session.commit()
    assert run_jobs() >= 1
    db.session.expire_all()
    people = service.get_table_or_404(workspace, people.id)
    assert _values(people, added.id) == ["Acme", None, None]
    assert column_service.get_job_or_404(workspace, people, job.id).state == "done"
