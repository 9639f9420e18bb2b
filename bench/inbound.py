"""Inbound webhook bench: rows posted to a source against a bare Flask view inserting the same rows.

Usage: ``python -m bench.inbound --rows 20000``

In the bench database (``MORKET_BENCH_DATABASE_URL``, else ``morket_bench_inbound`` on the PostgreSQL
at 127.0.0.1:5432, created and migrated when missing), two tables of the same kind (email, text,
number columns: the same storage, types and indexes) receive the same N rows as JSON arrays of
``--batch`` records, each request through the WSGI app in this process:

- ``inbound_us_per_row``: Morket's ``POST /api/v1/hooks/in/<token>`` (secret check, per-source rate
  limit on Redis, JSON-path mapping, cell parsing, the table's row lock, one insert, counters, commit);
- ``bare_us_per_row`` (the baseline): a bare Flask view that parses the same body and inserts the
  same rows into the other table with one ``executemany`` on a psycopg connection, then commits;
- the same two for single-row requests (``--single`` of them), where the fixed cost per request shows.

``ratios.inbound_over_bare`` is the batched time per row of Morket over the bare view's. The last
line printed is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from typing import Any

from bench.common import bench_workspace, ensure_database, log

DEFAULT_URL = "postgresql://postgres@127.0.0.1:5432/morket_bench_inbound"
COLUMNS = [
    {"name": "Email", "type": "email"},
    {"name": "Name", "type": "text"},
    {"name": "Employees", "type": "number"},
]


def _records(start: int, count: int) -> list[dict[str, Any]]:
    return [
        {"email": f"lead{i}@example.com", "person": {"name": f"Lead {i}"}, "company": {"size": i % 5000}}
        for i in range(start, start + count)
    ]


def _bare_app(dsn: str, storage: str, names: list[str]):
    """A Flask app with one view: parse the JSON array and insert its rows with one executemany."""
    import psycopg
    from flask import Flask, request

    bare = Flask("bare-inbound")
    conn = psycopg.connect(dsn)
    state = {"pos": 0}
    sql = f"INSERT INTO ut.{storage} (pos, {', '.join(names)}) VALUES (%s, %s, %s, %s)"

    @bare.post("/bare")
    def receive():
        body = request.get_json()
        params = []
        for record in body:
            params.append((state["pos"], record["email"], record["person"]["name"], record["company"]["size"]))
            state["pos"] += 1
        with conn.cursor() as cur:
            cur.executemany(sql, params)
        conn.commit()
        return {"inserted": len(params)}

    return bare, conn


def _time_posts(send, bodies: list[bytes]) -> float:
    started = time.perf_counter()
    for body in bodies:
        status = send(body)
        if status != 200:
            raise RuntimeError(f"a post answered {status}")
    return time.perf_counter() - started


def measure(rows: int, *, batch: int = 100, single: int = 300) -> dict[str, Any]:
    """Post ``rows`` rows to an inbound source and to a bare view; return figures and ratios."""
    url = os.environ.get("MORKET_BENCH_DATABASE_URL", DEFAULT_URL)
    ensure_database(url)
    os.environ.setdefault("MORKET_ENV", "development")
    from flask_migrate import upgrade
    from sqlalchemy.engine import make_url

    from morket import create_app

    redis_url = os.environ.get("MORKET_REDIS_URL") or "redis://127.0.0.1:6379/0"
    app = create_app({"SQLALCHEMY_DATABASE_URI": url, "REDIS_URL": redis_url, "RATELIMIT_STORAGE_URI": redis_url})
    with app.app_context():
        upgrade(directory=os.path.join(app.root_path, "..", "migrations"))
        from morket.extensions import db
        from morket.inbound import service
        from morket.tables import service as tables

        workspace, user = bench_workspace("bench-inbound", "Bench inbound")
        stamp = int(time.time())
        ours = tables.create_table(workspace, user, f"inbound-{stamp}", columns=COLUMNS)
        theirs = tables.create_table(workspace, user, f"bare-{stamp}", columns=COLUMNS)
        source, secret = service.create_source(workspace, user, ours, "bench")
        service.update_source(
            workspace,
            user,
            source,
            columns={"Email": "$.email", "Name": "person.name", "Employees": "$.company.size"},
            rate_per_minute=service.RATE_MAX,
        )
        db.session.commit()
        path = f"/api/v1/hooks/in/{source.token}"
        names = [c.storage_name for c in theirs.live_columns]
        ids = (workspace.id, ours.id, theirs.id)
        storage = theirs.storage_name
    dsn = make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
    bare, conn = _bare_app(dsn, storage, names)
    client, bare_client = app.test_client(), bare.test_client()
    headers = {"Content-Type": "application/json", "X-Morket-Secret": secret}

    def ours_send(body: bytes) -> int:
        return client.post(path, data=body, headers=headers).status_code

    def bare_send(body: bytes) -> int:
        return bare_client.post("/bare", data=body, headers={"Content-Type": "application/json"}).status_code

    batches = [json.dumps(_records(i, min(batch, rows - i))).encode() for i in range(0, rows, batch)]
    singles = [json.dumps(_records(rows + i, 1)[0]).encode() for i in range(single)]
    bare_singles = [json.dumps(_records(rows + i, 1)).encode() for i in range(single)]
    # Warm both paths (connections, caches, compiled paths), then time them alternately.
    ours_send(singles[0])
    bare_send(bare_singles[0])
    log(f"posting {rows:,} rows in {len(batches)} requests of {batch} to each side")
    ours_s = _time_posts(ours_send, batches)
    bare_s = _time_posts(bare_send, batches)
    log(f"posting {single - 1} single-row requests to each side")
    ours_single_s = _time_posts(ours_send, singles[1:])
    bare_single_s = _time_posts(bare_send, bare_singles[1:])
    conn.close()
    with app.app_context():
        from morket.workspaces.models import Workspace

        workspace = db.session.get(Workspace, ids[0])
        count = tables.get_table_or_404(workspace, ids[1]).row_count
        for table_id in ids[1:]:
            tables.delete_table(workspace, None, tables.get_table_or_404(workspace, table_id))
        db.session.commit()
    if count != rows + single:
        raise RuntimeError(f"the source's table holds {count} rows, expected {rows + single}")
    figures = {
        "inbound_rows": rows,
        "inbound_batch": batch,
        "inbound_us_per_row": round(ours_s / rows * 1e6, 1),
        "bare_inbound_us_per_row": round(bare_s / rows * 1e6, 1),
        "inbound_rows_per_s": round(rows / ours_s),
        "inbound_single_ms": round(ours_single_s / (single - 1) * 1000, 2),
        "bare_inbound_single_ms": round(bare_single_s / (single - 1) * 1000, 2),
    }
    ratios = {
        "inbound_over_bare": round(ours_s / bare_s, 2),
        "inbound_single_over_bare": round(ours_single_s / bare_single_s, 2),
    }
    return {"figures": figures, "ratios": ratios}


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Run the bench and print one JSON line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=20_000)
    parser.add_argument("--batch", type=int, default=100, help="records per request")
    parser.add_argument("--single", type=int, default=300, help="single-row requests timed on each side")
    args = parser.parse_args(argv)
    if args.rows < args.batch:
        parser.error("--rows must be at least --batch")
    result = measure(args.rows, batch=args.batch, single=args.single)
    print(json.dumps(result), flush=True)
    return result


if __name__ == "__main__":
    main()
