"""Lookup column bench: filling a lookup over N × N rows against the same join written by hand in SQL.

Usage: ``python -m bench.lookup --rows 1000000``

Builds (or reuses, keyed by the row count) two tables in the bench database
(``MORKET_BENCH_DATABASE_URL``, else ``morket_bench_lookup`` on the PostgreSQL at 127.0.0.1:5432,
created and migrated when missing): "Companies" (N rows: Domain, Name; about one domain in five
appears twice) and "People" (N rows: Website as ``https://www.<domain>/about`` or bare, about 80 %
matching). Then, in the same run:

- ``index_build_s``: the two expression indexes a lookup creates (B's key and A's key);
- ``lookup_fill_s``: ``tables.lookups.fill_lookup`` of a "first match" lookup People.Website →
  Companies.Domain → Name into its empty column (median of ``--repeat`` runs, each rolled back);
- ``sql_fill_s``: the bare ``UPDATE … FROM`` a DBA would write for the same result, on a plain
  psycopg connection, into an empty text column of the same table (same repeats, rolled back);
- ``source_edit_ms`` / ``key_edit_ms``: median time of one cell edit through ``update_cell`` plus
  commit, of Companies.Domain (the lookups that read it recompute by the old and new key) and of
  People.Website (the row recomputes), showing the indexes at work.

``ratios.lookup_over_sql`` = lookup_fill_s / sql_fill_s (goal ≤ 1.5). The last line printed is one
JSON object.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from typing import Any

import psycopg
from sqlalchemy import select, text
from sqlalchemy.engine import make_url

from bench.common import bench_workspace, log, migrated_app

DEFAULT_URL = "postgresql://postgres@127.0.0.1:5432/morket_bench_lookup"


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Run the bench and print one JSON line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=4, help="timed fills of each kind")
    parser.add_argument("--edits", type=int, default=20, help="timed single-cell edits of each kind")
    args = parser.parse_args(argv)
    if args.rows < 1000:
        parser.error("--rows must be at least 1000")
    app, url = migrated_app(DEFAULT_URL)
    with app.app_context():
        result = _run(url, args)
    print(json.dumps(result), flush=True)
    return result


def _fill_tables(workspace, user, rows: int, figures: dict[str, Any]):
    """Return (people, companies) with ``rows`` rows each, built with INSERT … SELECT once per size."""
    from morket.extensions import db
    from morket.tables import service
    from morket.tables.models import Table

    names = (f"lookup-people-{rows}", f"lookup-companies-{rows}")
    found = {
        t.name: t
        for t in db.session.scalars(select(Table).where(Table.workspace_id == workspace.id, Table.name.in_(names)))
    }
    if len(found) == 2 and all(t.row_count == rows for t in found.values()):
        log(f"reusing tables {found[names[0]].id} and {found[names[1]].id} ({rows} rows)")
        return service.get_table_or_404(workspace, found[names[0]].id), service.get_table_or_404(
            workspace, found[names[1]].id
        )
    for table in found.values():
        service.delete_table(workspace, user, table)
    db.session.commit()
    log(f"building two tables of {rows} rows")
    began = time.perf_counter()
    companies = service.create_table(
        workspace, user, names[1], columns=[{"name": "Domain", "type": "domain"}, {"name": "Name", "type": "text"}]
    )
    people = service.create_table(
        workspace, user, names[0], columns=[{"name": "Website", "type": "url"}, {"name": "Bare", "type": "text"}]
    )
    domain, name = (f"c_{companies.live_columns[i].id}" for i in range(2))
    website = f"c_{people.live_columns[0].id}"
    distinct = max(1, rows * 4 // 5)
    db.session.execute(
        text(
            f"INSERT INTO ut.{companies.storage_name} (pos, {domain}, {name}) "
            f"SELECT g, 'company' || (g % {distinct}) || '.com', 'Company ' || g FROM generate_series(0, {rows - 1}) g"
        )
    )
    db.session.execute(
        text(
            f"INSERT INTO ut.{people.storage_name} (pos, {website}) "
            f"SELECT g, CASE WHEN g % 2 = 0 THEN 'https://www.' ELSE '' END || 'company' || ((g * 7) % {rows}) "
            f"|| '.com' || CASE WHEN g % 3 = 0 THEN '/about' ELSE '' END FROM generate_series(0, {rows - 1}) g"
        )
    )
    companies.row_count = people.row_count = rows
    db.session.commit()
    with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        for table in (companies, people):
            conn.execute(text(f"VACUUM ANALYZE ut.{table.storage_name}"))
    figures["build_s"] = round(time.perf_counter() - began, 2)
    return service.get_table_or_404(workspace, people.id), service.get_table_or_404(workspace, companies.id)


def _median(samples: list[float]) -> float:
    return statistics.median(samples)


def _run(url: str, args: argparse.Namespace) -> dict[str, Any]:
    from morket.core.normalise import normalised_sql
    from morket.extensions import db
    from morket.tables import lookups, service

    figures: dict[str, Any] = {"rows": args.rows}
    workspace, user = bench_workspace("bench-lookup", "Bench lookup")
    people, companies = _fill_tables(workspace, user, args.rows, figures)
    website, bare = people.live_columns[0], people.live_columns[1]
    domain, name = companies.live_columns[0], companies.live_columns[1]
    column = next((c for c in people.live_columns if c.type == "lookup"), None)
    if column is not None:
        service.delete_column(workspace, user, people, column.id)
        db.session.commit()
        people = service.get_table_or_404(workspace, people.id)
    lookups.prune_indexes(workspace.id, {people.id, companies.id})
    db.session.commit()
    config = {
        "source_table_id": companies.id,
        "source_key_column_id": domain.id,
        "key_column_id": website.id,
        "field_column_id": name.id,
        "mode": "first",
    }
    # The column is added (settings checked) without its fill: the indexes and the fill are timed below.
    column = service.add_column(workspace, user, people, "Company", "lookup", config=config)
    db.session.commit()
    people = service.get_table_or_404(workspace, people.id)
    column = next(c for c in people.live_columns if c.id == column.id)
    found = lookups.resolve(column)
    assert isinstance(found, lookups.Lookup), found
    began = time.perf_counter()
    lookups.ensure_indexes(found)
    db.session.commit()
    figures["index_build_s"] = round(time.perf_counter() - began, 2)
    with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        for table in (companies, people):
            conn.execute(text(f"VACUUM ANALYZE ut.{table.storage_name}"))

    raw = psycopg.connect(make_url(url).set(drivername="postgresql").render_as_string(hide_password=False))
    a_key = normalised_sql(f"a.c_{website.id}", "domain")
    b_key = normalised_sql(f"b.c_{domain.id}", "domain")
    bare_sql = (
        f"UPDATE ut.{people.storage_name} AS a SET c_{bare.id} = m.v "
        f"FROM (SELECT DISTINCT ON ({b_key}) {b_key} AS k, b.c_{name.id} AS v FROM ut.{companies.storage_name} AS b "
        f"WHERE {b_key} <> '' ORDER BY {b_key}, b.pos) AS m WHERE {a_key} = m.k"
    )
    lookup_runs: list[float] = []
    sql_runs: list[float] = []
    matched = 0
    for i in range(args.repeat):
        for kind in ("lookup", "sql") if i % 2 == 0 else ("sql", "lookup"):
            # Each run starts from the same table: the rolled-back run's dead row versions vacuumed away.
            with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
                conn.execute(text(f"VACUUM ut.{people.storage_name}"))
            if kind == "lookup":
                began = time.perf_counter()
                matched = lookups.fill_lookup(workspace, found)
                lookup_runs.append(time.perf_counter() - began)
                db.session.rollback()
                people = service.get_table_or_404(workspace, people.id)
                column = next(c for c in people.live_columns if c.id == column.id)
                found = lookups.resolve(column)
                assert isinstance(found, lookups.Lookup)
            else:
                began = time.perf_counter()
                raw.execute(bare_sql)
                sql_runs.append(time.perf_counter() - began)
                raw.rollback()
            log(f"{kind} fill: {(lookup_runs if kind == 'lookup' else sql_runs)[-1]:.2f} s")
    figures["lookup_fill_s"] = round(_median(lookup_runs), 3)
    figures["sql_fill_s"] = round(_median(sql_runs), 3)
    figures["cells_filled"] = matched

    # Keep one fill for the edit timings.
    lookups.fill_lookup(workspace, found)
    db.session.commit()
    ids_b = db.session.scalars(
        text(f"SELECT id FROM ut.{companies.storage_name} ORDER BY random() LIMIT {args.edits}")
    ).all()
    ids_a = db.session.scalars(
        text(f"SELECT id FROM ut.{people.storage_name} ORDER BY random() LIMIT {args.edits}")
    ).all()
    edits: dict[str, list[float]] = {"source": [], "key": []}
    for n, (row_b, row_a) in enumerate(zip(ids_b, ids_a, strict=False)):
        began = time.perf_counter()
        table = service.get_table_or_404(workspace, companies.id, lock="share")
        service.update_cell(workspace, user, table, row_b, domain.id, f"company{n}.com")
        db.session.commit()
        edits["source"].append(time.perf_counter() - began)
        began = time.perf_counter()
        table = service.get_table_or_404(workspace, people.id, lock="share")
        service.update_cell(workspace, user, table, row_a, website.id, f"https://company{n + 1}.com/x")
        db.session.commit()
        edits["key"].append(time.perf_counter() - began)
    figures["source_edit_ms"] = round(1000 * _median(edits["source"]), 2)
    figures["key_edit_ms"] = round(1000 * _median(edits["key"]), 2)
    raw.close()
    return {
        "figures": figures,
        "ratios": {"lookup_over_sql": round(figures["lookup_fill_s"] / figures["sql_fill_s"], 3)},
    }


if __name__ == "__main__":
    main()
