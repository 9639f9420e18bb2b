"""Search bench: workspace search and typeahead through HTTP on an N-row table, index lag, reindex.

Usage: ``python -m bench.search --rows 1000000``

Builds (or reuses, keyed by the row count) one table in the bench database
(``MORKET_BENCH_DATABASE_URL``, else ``morket_bench_search`` on the PostgreSQL at 127.0.0.1:5432,
created and migrated when missing) with Company, Domain, Email and Notes columns filled by one
INSERT … SELECT (synthetic companies; a few "Acme Corp" rows planted deep), then, in the same run:

- ``reindex_s``: ``flask search reindex --table``'s work (``search.tasks.reindex``: triggers, DELETE,
  INSERT … SELECT, commit) into an index emptied beforehand; ``sql_reindex_s``: the same
  INSERT … SELECT on a plain psycopg connection into an empty copy of ``search_documents`` with the
  same indexes, run before and after the reindex (the mean). ``ratios.reindex_over_sql`` =
  reindex_s / sql_reindex_s (goal ≤ 1.5).
- ``search_p95_ms`` / ``typeahead_p95_ms``: ``GET /api/v1/search`` and ``/api/v1/search/typeahead``
  on a threaded werkzeug server in this process, with a bearer token, over a mix of queries (typos,
  prefixes, domains, emails, rare and common words); ``sql_p95_ms``: the engine's own statement for
  the same queries on a plain psycopg connection. ``ratios.search_over_sql`` = search_p95_ms /
  sql_p95_ms (goal ≤ 1.5).
- ``index_lag_p95_s``: a cell edited through ``tables.service.update_cell`` and committed as a
  request does (the after-commit relay included), then the time until search finds the new value,
  with a real worker (``python -m workers default``) running the sync jobs.

The last line printed is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import threading
import time
from typing import Any

import httpx
import psycopg
from sqlalchemy import select, text
from sqlalchemy.engine import make_url

from bench.common import bench_workspace, log, migrated_app

DEFAULT_URL = "postgresql://postgres@127.0.0.1:5432/morket_bench_search"
WORDS = [
    "globex",
    "initech",
    "umbrella",
    "hooli",
    "stark",
    "wayne",
    "wonka",
    "tyrell",
    "cyberdyne",
    "soylent",
    "aperture",
    "vandelay",
    "massive",
    "dynamic",
    "pied",
    "piper",
    "oscorp",
    "nakatomi",
    "gringotts",
    "monarch",
    "zorg",
    "duff",
    "krusty",
    "northwind",
    "contoso",
    "fabrikam",
    "litware",
    "adventure",
    "proseware",
    "wingtip",
    "tailspin",
    "lucerne",
    "margie",
    "fourth",
    "coffee",
    "alpine",
    "blue",
    "yonder",
    "trey",
    "woodgrove",
    "humongous",
    "southridge",
    "graphic",
    "design",
    "institute",
    "wide",
    "world",
    "importers",
]
SUFFIXES = ("Inc", "LLC", "GmbH", "Labs", "Group", "Holdings", "Partners", "Systems", "Analytics", "Ventures")
QUERIES = (
    "acme corp",
    "acmee corp",
    "ACME Corporation",
    "acme.com",
    "https://www.acme.com/",
    "jane@acme.com",
    "hooli labs",
    "hoolli",
    "nakatomi",
    "gringots holdings",
    "tyrell 4242",
    "piper",
    "zorg sys",
    "northwind importers",
    "contoso.io",
    "umbrela",
)
TYPEAHEAD = ("ac", "acm", "acme", "acme c", "acme co", "hoo", "hool", "nakat", "wonk", "tyrel")


def _p95(samples: list[float]) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(round(0.95 * (len(ordered) - 1))))]


def _table(workspace, user, rows: int, figures: dict[str, Any]):
    from morket.extensions import db
    from morket.tables import service
    from morket.tables.models import Table

    name = f"search-{rows}"
    found = db.session.scalars(select(Table).where(Table.workspace_id == workspace.id, Table.name == name)).first()
    if found is not None and found.row_count == rows:
        log(f"reusing table {found.id} ({rows} rows)")
        return service.get_table_or_404(workspace, found.id)
    if found is not None:
        service.delete_table(workspace, user, found)
        db.session.commit()
    log(f"building a table of {rows} rows")
    began = time.perf_counter()
    table = service.create_table(
        workspace,
        user,
        name,
        columns=[
            {"name": "Company", "type": "text"},
            {"name": "Domain", "type": "domain"},
            {"name": "Email", "type": "email"},
            {"name": "Notes", "type": "long_text"},
            {"name": "Employees", "type": "number"},
        ],
    )
    company, domain, email, notes, employees = (f"c_{c.id}" for c in table.live_columns)
    words = "(ARRAY[" + ",".join(f"'{w}'" for w in WORDS) + "])"
    suffixes = "(ARRAY[" + ",".join(f"'{s}'" for s in SUFFIXES) + "])"
    n = len(WORDS)
    planted = [rows // 3, rows // 2, rows - 7]
    db.session.execute(
        text(
            f"INSERT INTO ut.{table.storage_name} (pos, {company}, {domain}, {email}, {notes}, {employees}) "
            f"SELECT g, initcap(w) || ' ' || s || ' ' || (g % 10000), "
            f"CASE WHEN g % 3 = 0 THEN 'https://www.' ELSE '' END || w || (g % 5000) || '.com', "
            f"'contact' || g || '@' || w || (g % 5000) || '.com', "
            f"'Met at ' || initcap({words}[1 + (g * 7) % {n}]) || ' conference, follow up in Q' || (1 + g % 4), "
            f"g % 5000 "
            f"FROM (SELECT g, {words}[1 + g % {n}] AS w, {suffixes}[1 + (g / {n}) % 10] AS s "
            f"FROM generate_series(0, {rows - 1}) g) x"
        )
    )
    db.session.execute(
        text(
            f"UPDATE ut.{table.storage_name} SET {company} = 'Acme Corp', {domain} = 'acme.com', "
            f"{email} = 'jane@acme.com' WHERE pos = ANY(:p)"
        ),
        {"p": planted},
    )
    table.row_count = rows
    db.session.commit()
    with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text(f"VACUUM ANALYZE ut.{table.storage_name}"))
    figures["build_s"] = round(time.perf_counter() - began, 2)
    return service.get_table_or_404(workspace, table.id)


def _bare_insert(url: str, select_sql: str) -> float:
    """The same INSERT … SELECT on a plain psycopg connection into an empty copy of the index; seconds."""
    raw = psycopg.connect(make_url(url).set(drivername="postgresql").render_as_string(hide_password=False))
    raw.execute("DROP TABLE IF EXISTS bench_search_documents")
    raw.execute("CREATE TABLE bench_search_documents (LIKE search_documents INCLUDING ALL)")
    raw.commit()
    began = time.perf_counter()
    raw.execute("INSERT INTO bench_search_documents " + select_sql)
    raw.commit()
    elapsed = time.perf_counter() - began
    raw.execute("DROP TABLE bench_search_documents")
    raw.commit()
    raw.close()
    return elapsed


def _reindex(url: str, table, figures: dict[str, Any], ratios: dict[str, Any]) -> None:
    """Morket's reindex between two bare inserts (their mean is the baseline: on a shared machine
    the load moves during a run of minutes, and whichever went first was measured on another one)."""
    from morket.extensions import db
    from morket.search import indexing, tasks

    select_sql = indexing.documents_select(indexing.load_table(table.id))
    before = _bare_insert(url, select_sql)
    log(f"bare INSERT … SELECT (before): {before:.2f} s")
    db.session.execute(text("DELETE FROM search_documents WHERE table_id = :t"), {"t": table.id})
    db.session.commit()
    with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text("VACUUM search_documents"))
    began = time.perf_counter()
    written = tasks.reindex([table.id])
    figures["reindex_s"] = round(time.perf_counter() - began, 2)
    figures["documents"] = written
    log(f"reindex: {figures['reindex_s']} s for {written} documents")
    after = _bare_insert(url, select_sql)
    log(f"bare INSERT … SELECT (after): {after:.2f} s")
    figures["sql_reindex_s"] = round((before + after) / 2, 2)
    figures["sql_reindex_runs_s"] = [round(before, 2), round(after, 2)]
    ratios["reindex_over_sql"] = round(figures["reindex_s"] / max(figures["sql_reindex_s"], 1e-6), 2)
    with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text("VACUUM ANALYZE search_documents"))


class _Server:
    """The app on a threaded werkzeug server in this process (rate limits off: the bench is one user)."""

    def __init__(self, url: str) -> None:
        from werkzeug.serving import make_server

        from morket import create_app

        redis_url = os.environ.get("MORKET_REDIS_URL") or "redis://127.0.0.1:6379/0"
        self.app = create_app(
            {"SQLALCHEMY_DATABASE_URI": url, "REDIS_URL": redis_url, "TESTING": True, "RATELIMIT_ENABLED": False}
        )
        self.server = make_server("127.0.0.1", 0, self.app, threaded=True)
        self.base = f"http://127.0.0.1:{self.server.server_port}"
        self.thread = threading.Thread(target=self.server.serve_forever, name="bench-web", daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.thread.join(10)


def _http(server: _Server, token: str, samples: int, figures: dict[str, Any]) -> dict[str, list[float]]:
    timings: dict[str, list[float]] = {"search": [], "typeahead": []}
    headers = {"Authorization": f"Bearer {token}"}
    with httpx.Client(base_url=server.base, headers=headers, timeout=30) as client:
        for path, queries, kind in (
            ("/api/v1/search", QUERIES, "search"),
            ("/api/v1/search/typeahead", TYPEAHEAD, "typeahead"),
        ):
            for q in queries:  # warm
                resp = client.get(path, params={"q": q})
                assert resp.status_code == 200, resp.text[:300]
            for _ in range(samples):
                for q in queries:
                    began = time.perf_counter()
                    resp = client.get(path, params={"q": q})
                    timings[kind].append(time.perf_counter() - began)
                    assert resp.status_code == 200
        found = client.get("/api/v1/search", params={"q": "acmee corp"}).json()["data"]
        figures["acme_rows_found"] = sum(1 for h in found if h["value"] == "Acme Corp")
    return timings


def _engine_sql(workspace_id: int, samples: int, url: str) -> list[float]:
    """The engine's own statements for the same queries, on a plain connection (captured, then replayed).

    One sample is every statement the engine ran for one query, in one transaction, as it runs them.
    """
    from morket.extensions import db
    from morket.search.engine import Filters, parse_query
    from morket.search.postgres import PostgresEngine

    captured: list[list[tuple[str, dict[str, Any]]]] = []
    real = db.session.execute

    def capture(statement, params=None, *a, **kw):
        compiled = statement.compile(dialect=db.engine.dialect)
        captured[-1].append((str(compiled), {**compiled.params, **(params or {})}))
        return real(statement, params, *a, **kw)

    engine = PostgresEngine()
    db.session.execute = capture  # type: ignore[method-assign]
    try:
        for q in QUERIES:
            captured.append([])
            engine.find(workspace_id, parse_query(q), Filters(), 200)
            db.session.rollback()
    finally:
        del db.session.execute
    raw = psycopg.connect(make_url(url).set(drivername="postgresql").render_as_string(hide_password=False))
    timings: list[float] = []
    with raw.cursor() as cur:
        for round_ in range(samples + 1):  # the first round warms
            for statements in captured:
                began = time.perf_counter()
                for sql, params in statements:
                    cur.execute(sql, params)
                    cur.fetchall()
                elapsed = time.perf_counter() - began
                raw.rollback()
                if round_:
                    timings.append(elapsed)
    raw.close()
    return timings


def _lag(url: str, workspace, user, table, edits: int) -> list[float]:
    """Edit a cell, commit as a request does, and time until search finds the new value."""
    from morket.core.jobs import redis_connection, relay_committed
    from morket.extensions import db
    from morket.search import service as search
    from morket.tables import service

    env = {**os.environ, "MORKET_DATABASE_URL": url, "MORKET_ENV": "development"}
    env.setdefault("MORKET_REDIS_URL", "redis://127.0.0.1:6379/0")
    worker = subprocess.Popen(
        [sys.executable, "-m", "workers", "default", "--simple"], env=env, stdout=subprocess.DEVNULL
    )
    try:
        from rq import Worker

        waited = time.monotonic()
        while not Worker.all(connection=redis_connection()) and time.monotonic() - waited < 120:
            time.sleep(0.2)  # the worker loads the app (slow on a loaded machine)
        time.sleep(1)
        company = table.live_columns[0]
        ids = db.session.scalars(text(f"SELECT id FROM ut.{table.storage_name} ORDER BY random() LIMIT {edits}")).all()
        db.session.commit()
        lags: list[float] = []
        for n, row_id in enumerate(ids):
            word = f"Zqlag{n}x{int(time.time())}"
            locked = service.get_table_or_404(workspace, table.id, lock="share")
            service.update_cell(workspace, user, locked, row_id, company.id, f"{word} Holdings")
            db.session.commit()
            committed = time.perf_counter()
            relay_committed()
            while True:
                rows = search.search(workspace, "owner", word).rows
                db.session.commit()
                if rows:
                    lags.append(time.perf_counter() - committed)
                    break
                if time.perf_counter() - committed > 30:
                    lags.append(30.0)
                    break
                time.sleep(0.02)
        return lags
    finally:
        worker.terminate()
        worker.wait(10)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Run the bench and print one JSON line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--samples", type=int, default=10, help="rounds over the query mix")
    parser.add_argument("--edits", type=int, default=20, help="timed edits for the index lag")
    parser.add_argument(
        "--no-reindex",
        dest="reindex",
        action="store_false",
        help="keep the table's index as a previous run left it (no reindex figures): the search, typeahead "
        "and lag phases alone",
    )
    args = parser.parse_args(argv)
    if args.rows < 1000:
        parser.error("--rows must be at least 1000")
    app, url = migrated_app(DEFAULT_URL)
    with app.app_context():
        result = _run(url, args)
    print(json.dumps(result), flush=True)
    return result


def _run(url: str, args: argparse.Namespace) -> dict[str, Any]:
    from morket.api.tokens import encode_access_token

    figures: dict[str, Any] = {"rows": args.rows}
    ratios: dict[str, Any] = {}
    workspace, user = bench_workspace("bench-search", "Bench search")
    table = _table(workspace, user, args.rows, figures)
    if args.reindex:
        _reindex(url, table, figures, ratios)
    server = _Server(url)
    try:
        with server.app.app_context():
            token = encode_access_token(user.id, workspace.id, "owner")
        http = _http(server, token, args.samples, figures)
    finally:
        server.close()
    sql = _engine_sql(workspace.id, args.samples, url)
    figures["search_p95_ms"] = round(_p95(http["search"]) * 1000, 1)
    figures["search_p50_ms"] = round(statistics.median(http["search"]) * 1000, 1)
    figures["typeahead_p95_ms"] = round(_p95(http["typeahead"]) * 1000, 1)
    figures["typeahead_p50_ms"] = round(statistics.median(http["typeahead"]) * 1000, 1)
    figures["sql_p95_ms"] = round(_p95(sql) * 1000, 1)
    figures["sql_p50_ms"] = round(statistics.median(sql) * 1000, 1)
    ratios["search_over_sql"] = round(figures["search_p95_ms"] / max(figures["sql_p95_ms"], 1e-3), 2)
    lags = _lag(url, workspace, user, table, args.edits)
    figures["index_lag_p95_s"] = round(_p95(lags), 3)
    figures["index_lag_p50_s"] = round(statistics.median(lags), 3)
    with psycopg.connect(make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)) as raw:
        version = raw.info.server_version
    return {
        "bench": "search",
        "figures": figures,
        "ratios": ratios,
        "goals": {
            "search_p95_ms": 50,
            "typeahead_p95_ms": 30,
            "search_over_sql": 1.5,
            "index_lag_p95_s": 2,
            "reindex_over_sql": 1.5,
        },
        "machine": {"cpus": os.cpu_count(), "postgres": version, "load": os.getloadavg()[0]},
    }


if __name__ == "__main__":
    main()
