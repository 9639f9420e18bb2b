"""Grid storage bench: windows at any depth, sorted and filtered views, cell edits.

Usage: ``python -m bench.grid --rows 1000000``

Seeds (or reuses, keyed by the row count) a 10-column table in the bench database
(``MORKET_BENCH_DATABASE_URL``, else ``morket_bench`` on the PostgreSQL at 127.0.0.1:5432, created
and migrated when missing), then measures in the same run:

- ``read_window`` for 100 rows at position 0 and at 99 % of the table, unsorted and in a view with
  a two-key sort and a two-condition filter, against the baseline: the same window's single SQL
  statement sent through a bare psycopg connection (no ORM, no Morket code);
- ``sort_build_s``: the time from saving a new sort (and filter) to a usable window;
- ``edit_p95_ms``: loading the table, ``update_cell`` and the commit;
- ``delete_one_row_ms``: ``delete_rows`` of one row in the middle and near the end (the worse of
  the two medians), with the sorted view's order patched too (rolled back afterwards), once its
  ``row_id`` index is built (``order_index_s``; the ``*_before_index`` figures are the same delete
  scanning the order), against the bare ``DELETE`` of that row (``ratios.delete_over_sql``).

Server-side times only. A window sample first loads the table and view as a request would (timed
apart, ``load_table_and_view_median_ms``), then times ``read_window`` alone, so that the ratio to
the bare statement is the cost of Morket's read path.

The HTML half times the grid's real window route (``GET …/rows``: session, membership, table and
view loads, the read, the partial) through the Flask test client, one fresh app context per request
as in production, against a bare Flask view that runs the same window SQL on a plain psycopg
connection and renders the same cells with a one-loop template: ``ratios.html_over_bare`` (worst
median ratio over positions and views) and ``figures.window_html_p95_ms`` (worst of unsorted and
sorted + filtered). The last line printed is one JSON object.

Once the table is seeded the process freezes what it has loaded out of the garbage collector's
passes, as a web worker does once gunicorn has loaded the app (``morket/gunicorn_config.py``).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import statistics
import threading
import time
from collections.abc import Callable
from contextlib import contextmanager
from typing import Any

import psycopg
from sqlalchemy import select, text
from sqlalchemy.engine import make_url

from bench.common import bench_workspace, log, migrated_app

DEFAULT_URL = "postgresql://postgres@127.0.0.1:5432/morket_bench"
WINDOW = 100
COLUMNS = (
    {"name": "Company", "type": "text"},
    {"name": "Domain", "type": "domain"},
    {"name": "Email", "type": "email"},
    {"name": "Employees", "type": "number"},
    {"name": "Revenue", "type": "currency"},
    {"name": "Founded", "type": "date"},
    {"name": "Active", "type": "checkbox"},
    {"name": "Stage", "type": "single_select", "config": {"options": ["Lead", "Qualified", "Customer", "Churned"]}},
    {"name": "Score", "type": "percent"},
    {"name": "Notes", "type": "long_text"},
)


def _p95(samples: list[float]) -> float:
    ordered = sorted(samples)
    return ordered[max(0, round(0.95 * len(ordered)) - 1)]


def _timed(fn: Callable[[], Any]) -> float:
    began = time.perf_counter()
    fn()
    return time.perf_counter() - began


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Run the bench and print one JSON line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, required=True)
    parser.add_argument("--samples", type=int, default=40, help="timed window reads per position")
    parser.add_argument("--builds", type=int, default=3, help="sort builds per kind")
    args = parser.parse_args(argv)
    if args.rows < 1000:
        parser.error("--rows must be at least 1000")

    app, url = migrated_app(DEFAULT_URL)
    with app.app_context():
        return _run(url, args)


def _table(workspace, user, rows: int, figures: dict[str, Any]):
    from morket.extensions import db
    from morket.tables import service
    from morket.tables.models import Table
    from tests.support.seeding import seed_rows

    name = f"grid-{rows}"
    for found in db.session.scalars(select(Table).where(Table.workspace_id == workspace.id, Table.name == name)):
        table = service.get_table_or_404(workspace, found.id)
        if service.count_rows(workspace, user, table) == rows and len(table.live_columns) == len(COLUMNS):
            log(f"reusing table {table.id} ({rows} rows)")
            return table
        service.delete_table(workspace, user, table)
        db.session.commit()
    log(f"seeding {rows} rows")
    began = time.perf_counter()
    table = service.create_table(workspace, user, name, columns=COLUMNS)
    if rows >= GENERATE_AT:
        _generate_rows(table, rows)
    else:
        seed_rows(workspace, user, table, rows, seed=rows)
    db.session.commit()
    figures["seed_s"] = round(time.perf_counter() - began, 2)
    with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text(f"VACUUM ANALYZE ut.{table.storage_name}"))
    return service.get_table_or_404(workspace, table.id)


# From this many rows the bench table is generated by PostgreSQL (one INSERT … SELECT over
# generate_series, the same kinds of values as ``seed_rows``): 10,000,000 rows by COPY from Python
# would take many minutes.
GENERATE_AT = 1_000_000
_WORDS = "'{acme,globex,initech,umbrella,hooli,stark,wayne,wonka,tyrell,cyberdyne,soylent,aperture,vandelay,massive,dynamic,pied,piper,oscorp,nakatomi,gringotts,monarch,zorg,duff,krusty}'::text[]"  # noqa: E501
_WORD = f"({_WORDS})[1 + floor(random() * 24)::int]"
_GENERATED = {
    "text": f"initcap({_WORD}) || ' ' || floor(random() * 100000)::int",
    "domain": f"{_WORD} || floor(random() * 1000)::int || '.com'",
    "email": f"'person' || g || '@' || {_WORD} || '.com'",
    "number": "(1 + floor(random() * 99999))::numeric",
    "currency": "round((random() * 10000000)::numeric, 2)",
    "date": "date '2000-01-01' + floor(random() * 9000)::int",
    "checkbox": "random() < 0.5",
    "single_select": "(ARRAY['Lead', 'Qualified', 'Customer', 'Churned'])[1 + floor(random() * 4)::int]",
    "percent": "round((random() * 100)::numeric, 2)",
    "long_text": " || ' ' || ".join([_WORD] * 12),
}


def _generate_rows(table, rows: int) -> None:
    """Append ``rows`` rows to the bench table with one INSERT … SELECT generate_series (trusted values)."""
    from morket.extensions import db
    from morket.tables import service

    service.lock_rows(table)
    start = service.next_pos(table)
    live = table.live_columns
    names = ", ".join(["pos", *(c.storage_name for c in live)])
    values = ", ".join(["%(start)s + g", *(_GENERATED[c.type] for c in live)])
    connection = db.session.connection()
    connection.exec_driver_sql("SELECT setseed(0.5)")
    connection.exec_driver_sql(
        f"INSERT INTO ut.{table.storage_name} ({names}) SELECT {values} FROM generate_series(0, %(n)s - 1) g",
        {"start": start, "n": rows},
    )
    table.row_count += rows
    db.session.flush()


def _run(url: str, args: argparse.Namespace) -> dict[str, Any]:
    from morket.core.runtime import freeze_loaded_objects
    from morket.extensions import db
    from morket.tables import service

    figures: dict[str, Any] = {}
    ratios: dict[str, Any] = {}
    workspace, user = bench_workspace("bench", "Bench")
    table = _table(workspace, user, args.rows, figures)
    by_name = {c.name: c for c in table.live_columns}
    raw = psycopg.connect(make_url(url).set(drivername="postgresql").render_as_string(hide_password=False))
    raw.autocommit = True
    # From here on this process serves as a web worker does once gunicorn has loaded the app
    # (``morket/gunicorn_config.py``): what is loaded so far is frozen out of the GC's passes.
    freeze_loaded_objects()

    view = next((v for v in service.list_views(workspace, table) if v.name == "bench sort"), None)
    if view is None:
        view = service.create_view(workspace, user, table, "bench sort")
        db.session.commit()

    def sort_spec(direction: str) -> list[dict[str, Any]]:
        return [
            {"column_id": by_name["Employees"].id, "dir": direction},
            {"column_id": by_name["Company"].id, "dir": "asc"},
        ]

    filters = {
        "op": "and",
        "conditions": [
            {"column_id": by_name["Stage"].id, "operator": "any_of", "value": ["Lead", "Qualified", "Customer"]},
            {"column_id": by_name["Score"].id, "operator": "gt", "value": 20},
        ],
    }

    # Time to make a new order usable, as a user sees it. The sort is saved (committed), then the
    # grid's window route is asked for the first window's HTML: ``first_sorted_window_s``. Then a
    # worker runs what the window queued (a large table's order build), and a window a quarter of
    # the way down is read through the route until it has rows and no longer says it sorts:
    # ``sort_build_s``. Below ``sorting.BACKGROUND_ORDER_AT`` rows the first window builds the order.
    client = _client(workspace, user)
    first_windows: dict[str, list[float]] = {"sort": [], "sort_filter": []}
    builds: dict[str, list[float]] = {"sort": [], "sort_filter": []}
    base_url = f"/w/{workspace.slug}/tables/{table.id}/rows?view={view.id}&limit={WINDOW}"
    for i in range(args.builds):
        for kind in ("sort", "sort_filter"):
            direction = "desc" if i % 2 == 0 else "asc"
            began = time.perf_counter()
            service.update_view(
                workspace,
                user,
                table,
                view,
                sort=sort_spec(direction),
                filters=filters if kind == "sort_filter" else {},
            )
            db.session.commit()
            first = _window(client, f"{base_url}&start=0")
            first_windows[kind].append(time.perf_counter() - began)
            assert first["ids"], "the first sorted window is empty"
            deep_url = f"{base_url}&start={int(first['total'] * 0.25)}"
            # As the grid does: ask for the deep window every 0.2 s until it has rows and no longer
            # sorts, on another thread, while this one serves as the worker.
            ready: list[float] = []
            poller = threading.Thread(target=_poll, args=(client, deep_url, ready), daemon=True)
            poller.start()
            while poller.is_alive():
                _work(client.application)
                poller.join(0.05)
            assert ready, "the sorted view's deep window never came"
            builds[kind].append(ready[0] - began)
            again = _window(client, f"{base_url}&start=0")
            assert again["ids"] == first["ids"], "the first window differs from the built order's"
            log(f"sort {kind}: first window {first_windows[kind][-1]:.2f} s, built {builds[kind][-1]:.2f} s")
    for kind, samples in builds.items():
        figures[f"sort_build_s_{kind}"] = round(statistics.median(samples), 3)
        figures[f"first_sorted_window_s_{kind}"] = round(statistics.median(first_windows[kind]), 3)
    figures["sort_build_s"] = max(figures["sort_build_s_sort"], figures["sort_build_s_sort_filter"])
    figures["first_sorted_window_s"] = max(
        figures["first_sorted_window_s_sort"], figures["first_sorted_window_s_sort_filter"]
    )
    db.session.expire_all()
    # The view stays sorted and filtered (the last build was sort_filter) for the window timings.

    loads: list[float] = []
    for label, current in (("unsorted", None), ("sorted_filtered", view)):
        total = service.count_rows(workspace, user, table, current)
        db.session.commit()
        figures[f"rows_in_view_{label}"] = total
        positions = {"start": 0, "deep": max(0, int(total * 0.99) - WINDOW // 2)}
        morket: dict[str, list[float]] = {"start": [], "deep": []}
        bare: dict[str, list[float]] = {"start": [], "deep": []}
        for where, start in positions.items():
            statement = service.window_statement(table, current, start, WINDOW)
            compiled = statement.compile(dialect=db.engine.dialect)
            sql, params = str(compiled), compiled.params
            expected = [r.id for r in service.read_window(workspace, user, table, current, start, WINDOW)]
            with raw.cursor() as cur:
                cur.execute(sql, params)
                assert [r[0] for r in cur.fetchall()] == expected, "baseline and Morket disagree"
            db.session.commit()
            for _ in range(args.samples):
                # As in a request: load the table and view first (timed apart), then read the window.
                loaded: dict[str, Any] = {}

                def load(c=current, loaded=loaded) -> None:
                    loaded["table"] = service.get_table_or_404(workspace, table.id)
                    loaded["view"] = c and service.get_view_or_404(workspace, loaded["table"], c.id)

                loads.append(_timed(load))
                morket[where].append(
                    _timed(
                        lambda s=start, loaded=loaded: service.read_window(
                            workspace, user, loaded["table"], loaded["view"], s, WINDOW
                        )
                    )
                )
                db.session.commit()
                with raw.cursor() as cur:
                    bare[where].append(_timed(lambda cur=cur, q=sql, p=params: (cur.execute(q, p), cur.fetchall())))
        med = {k: statistics.median(v) * 1000 for k, v in morket.items()}
        bare_med = {k: statistics.median(v) * 1000 for k, v in bare.items()}
        figures[f"window_p95_ms_{label}"] = round(_p95(morket["start"] + morket["deep"]) * 1000, 3)
        figures[f"window_median_ms_{label}"] = {k: round(v, 3) for k, v in med.items()}
        figures[f"sql_window_median_ms_{label}"] = {k: round(v, 3) for k, v in bare_med.items()}
        ratios[f"deep_over_start_{label}"] = round(med["deep"] / med["start"], 3)
        ratios[f"window_over_sql_{label}"] = round(max(med[k] / bare_med[k] for k in med), 3)
        log(f"{label}: {figures[f'window_median_ms_{label}']} ms vs sql {figures[f'sql_window_median_ms_{label}']}")
    figures["load_table_and_view_median_ms"] = round(statistics.median(loads) * 1000, 3)
    figures["window_p95_ms"] = max(figures["window_p95_ms_unsorted"], figures["window_p95_ms_sorted_filtered"])
    ratios["deep_over_start"] = max(ratios["deep_over_start_unsorted"], ratios["deep_over_start_sorted_filtered"])
    ratios["window_over_sql"] = max(ratios["window_over_sql_unsorted"], ratios["window_over_sql_sorted_filtered"])

    rng = random.Random(args.rows)
    total = service.count_rows(workspace, user, table)
    row_ids = [r.id for r in service.read_window(workspace, user, table, None, rng.randrange(total - 500), 500)]
    db.session.commit()
    notes = by_name["Notes"].id
    edits: list[float] = []
    for i in range(max(20, args.samples)):
        row_id = rng.choice(row_ids)

        def edit(row_id: int = row_id, i: int = i) -> None:
            loaded = service.get_table_or_404(workspace, table.id)
            service.update_cell(workspace, user, loaded, row_id, notes, f"bench edit {i}")
            db.session.commit()

        edits.append(_timed(edit))
    figures["edit_p95_ms"] = round(_p95(edits) * 1000, 3)
    figures["edit_median_ms"] = round(statistics.median(edits) * 1000, 3)
    # Deleting a row is a DELETE, a gap in the table's positions and one in each built view order
    # (found through the order's row_id index, which a job builds after the order), never a
    # renumbering. Timed in the middle and near the end, then rolled back to keep the table; first
    # as a delete meets an order whose index is not built yet (the scan), then with it. The
    # baseline is the bare ``DELETE … WHERE id = …`` on a plain connection, rolled back too.
    from morket.tables import storage

    bare_delete = f"DELETE FROM ut.{table.storage_name} WHERE id = %s"
    for stage in ("before_index", "indexed"):
        if stage == "indexed":
            figures["order_index_s"] = round(
                _timed(lambda: (storage.index_order_rows(table.id, view.id), db.session.commit())), 2
            )
        for label, fraction in (("middle", 0.5), ("near_end", 0.999)):
            doomed = service.read_window(workspace, user, table, None, int(total * fraction), 1)[0].id
            db.session.commit()
            samples, bare_samples = [], []
            for _ in range(5):
                loaded = service.get_table_or_404(workspace, table.id)
                samples.append(_timed(lambda t=loaded, d=doomed: service.delete_rows(workspace, user, t, [d])))
                db.session.rollback()
                with raw.transaction(force_rollback=True), raw.cursor() as cur:
                    bare_samples.append(_timed(lambda c=cur, d=doomed: c.execute(bare_delete, [d])))
            suffix = "" if stage == "indexed" else "_before_index"
            figures[f"delete_one_row_{label}{suffix}_ms"] = round(statistics.median(samples) * 1000, 1)
            figures[f"sql_delete_one_row_{label}{suffix}_ms"] = round(statistics.median(bare_samples) * 1000, 1)
    figures["delete_one_row_ms"] = max(figures["delete_one_row_middle_ms"], figures["delete_one_row_near_end_ms"])
    ratios["delete_over_sql"] = round(
        figures["delete_one_row_ms"]
        / max(figures["sql_delete_one_row_middle_ms"], figures["sql_delete_one_row_near_end_ms"], 0.01),
        3,
    )
    _html(
        table,
        {"unsorted": service.list_views(workspace, table)[0], "sorted_filtered": view},
        raw,
        args,
        figures,
        ratios,
    )
    server_version = raw.info.server_version
    raw.close()

    result = {
        "bench": "grid",
        "rows": args.rows,
        "figures": figures,
        "ratios": ratios,
        "machine": {"cpus": os.cpu_count(), "postgres": server_version},
    }
    print(json.dumps(result), flush=True)
    return result


def _client(workspace, user):
    """A test client of the bench's app, logged in as the bench user, its window limit cleared."""
    from flask import current_app

    from morket.accounts.service import start_session
    from morket.core.ratelimit import clear_rate_limits
    from morket.extensions import db

    app = current_app._get_current_object()
    clear_rate_limits(f"user:{int(user.id)}")
    client = app.test_client()
    with client.session_transaction() as session:
        session["_user_id"] = start_session(user)
        session["_fresh"] = True
    db.session.commit()
    return client


_ROW_IDS = re.compile(r'data-row-id="(\d+)"')


def _window(client, url: str) -> dict[str, Any]:
    """GET a window through the grid's route: its row ids, total and sorting header."""
    with client.application.app_context():
        resp = client.get(url, headers={"HX-Request": "true"})
    assert resp.status_code == 200, resp.status_code
    return {
        "ids": [int(i) for i in _ROW_IDS.findall(resp.get_data(as_text=True))],
        "total": int(resp.headers["X-Grid-Total"]),
        "sorting": resp.headers.get("X-Grid-Sorting"),
    }


def _poll(client, url: str, ready: list[float], timeout: float = 600.0) -> None:
    """GET ``url`` every 0.2 s until the window has rows and no sorting header; note when."""
    deadline = time.perf_counter() + timeout
    while time.perf_counter() < deadline:
        got = _window(client, url)
        if got["ids"] and got["sorting"] is None:
            ready.append(time.perf_counter())
            return
        time.sleep(0.2)


def _work(app) -> None:
    """Run the queued jobs as a worker does (burst), in the bench's app and Redis."""
    from redis import Redis
    from rq import Queue, SimpleWorker

    from morket.core.jobs import QUEUES

    with app.app_context():
        conn = Redis.from_url(app.config["REDIS_URL"])
        queues = [Queue(name, connection=conn) for name in QUEUES]
        if sum(q.count for q in queues):
            SimpleWorker(queues, connection=conn).work(burst=True, with_scheduler=False)
        conn.close()


BARE_TEMPLATE = (
    '{% for r in rows %}<div class="grid-row" data-row-id="{{ r[0] }}" data-pos="{{ start + loop.index0 }}">'
    '<div class="grid-rownum">{{ start + loop.index }}</div>'
    '{% for v in r[1:-1] %}<div class="grid-cell" data-raw="{{ v if v is not none else \'\' }}">'
    "{{ v if v is not none else '' }}</div>{% endfor %}</div>{% endfor %}"
)


def _bare_app(raw: psycopg.Connection, statements: dict[str, tuple[str, Any]]):
    """A Flask app with one view: the window's SQL on a plain connection, cells through a one-loop template."""
    from flask import Flask, request

    bare = Flask("bare_window")
    template = bare.jinja_env.from_string(BARE_TEMPLATE)

    @bare.get("/rows/<key>")
    def rows(key: str) -> str:
        sql, params = statements[key]
        with raw.cursor() as cur:
            cur.execute(sql, params)
            found = cur.fetchall()
        return template.render(rows=found, start=int(request.args["start"]))

    return bare


def _html(table, views: dict[str, Any], raw: psycopg.Connection, args: argparse.Namespace, figures, ratios) -> None:
    """Time the grid's window route against the bare view, for each view at the start and deep."""
    import re

    from flask import current_app

    from morket.accounts.service import start_session
    from morket.core.ratelimit import clear_rate_limits
    from morket.extensions import db
    from morket.tables import service

    app = current_app._get_current_object()  # the bench's own app
    workspace, user = bench_workspace("bench", "Bench")
    row_ids = re.compile(r'data-row-id="(\d+)"')
    statements: dict[str, tuple[str, Any]] = {}
    plan: list[tuple[str, str, int]] = []
    for label, current in views.items():
        total = service.count_rows(workspace, user, table, current)
        for where, start in (("start", 0), ("deep", max(0, int(total * 0.99) - WINDOW // 2))):
            compiled = service.window_statement(table, current, start, WINDOW).compile(dialect=db.engine.dialect)
            statements[f"{label}-{where}"] = (str(compiled), compiled.params)
            plan.append((label, where, start))
    db.session.commit()
    # Runs a few seconds apart would meet the grid's per-minute limit: start the user's windows afresh.
    clear_rate_limits(f"user:{int(user.id)}")
    client = app.test_client()
    with client.session_transaction() as session:
        session["_user_id"] = start_session(user)
        session["_fresh"] = True
    db.session.commit()
    bare = _bare_app(raw, statements).test_client()
    html: dict[str, list[float]] = {}
    for label, where, start in plan:
        view_id = views[label].id
        url = f"/w/{workspace.slug}/tables/{table.id}/rows?start={start}&limit={WINDOW}&view={view_id}"
        bare_url = f"/rows/{label}-{where}?start={start}"

        def morket(url: str = url) -> bytes:
            with app.app_context():
                resp = client.get(url, headers={"HX-Request": "true"})
                assert resp.status_code == 200, resp.status_code
                return resp.data

        got, want = morket(), bare.get(bare_url).data
        assert row_ids.findall(got.decode()) == row_ids.findall(want.decode()), "bare and Morket windows disagree"
        with _statements(db.engine) as statements:
            morket()
        figures[f"window_html_statements_{label}_{where}"] = len(statements)
        # Interleaved, so that whatever else the machine does weighs on both sides alike. CPU time
        # of this process is kept too: it moves less than wall time when other work shares the cores
        # (it leaves out PostgreSQL's and Redis's side, which wall time includes).
        ours, theirs, ours_cpu, theirs_cpu = [], [], [], []
        for _ in range(args.samples):
            began = time.process_time()
            ours.append(_timed(morket))
            ours_cpu.append(time.process_time() - began)
            began = time.process_time()
            theirs.append(_timed(lambda u=bare_url: bare.get(u).data))
            theirs_cpu.append(time.process_time() - began)
        html.setdefault(label, []).extend(ours)
        ratio = statistics.median(ours) / statistics.median(theirs)
        ratios[f"html_over_bare_{label}_{where}"] = round(ratio, 3)
        cpu_ratio = statistics.median(ours_cpu) / max(statistics.median(theirs_cpu), 1e-6)
        ratios[f"html_cpu_over_bare_{label}_{where}"] = round(cpu_ratio, 3)
        ours_ms, theirs_ms = statistics.median(ours) * 1000, statistics.median(theirs) * 1000
        log(f"html {label} {where}: {ours_ms:.2f} ms vs bare {theirs_ms:.2f} ms (cpu ratio {cpu_ratio:.2f})")
    for label, samples in html.items():
        figures[f"window_html_p95_ms_{label}"] = round(_p95(samples) * 1000, 3)
    figures["window_html_p95_ms"] = max(figures[f"window_html_p95_ms_{label}"] for label in html)
    ratios["html_over_bare"] = max(v for k, v in ratios.items() if k.startswith("html_over_bare_"))
    ratios["html_cpu_over_bare"] = max(v for k, v in ratios.items() if k.startswith("html_cpu_over_bare_"))


@contextmanager
def _statements(engine):
    """Collect the SQL statements run on ``engine`` inside the block (connection pings are not statements)."""
    from sqlalchemy import event

    seen: list[str] = []

    def count(conn, cursor, statement, *args) -> None:
        seen.append(statement)

    event.listen(engine, "before_cursor_execute", count)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", count)


if __name__ == "__main__":
    main()
