"""OpenSearch engine bench: Morket's own work per query beyond OpenSearch's answer.

Usage: ``python -m bench.search_opensearch --rows 20000 --candidates 600 --rounds 300``

No OpenSearch runs on the bench machines, so a local HTTP server answers every ``_search`` with the
same recorded OpenSearch JSON: ``--candidates`` hits, documents of a table of ``--rows`` rows built
(or reused) in the bench database (``MORKET_BENCH_DATABASE_URL``, else ``morket_bench_search_os``
on the PostgreSQL at 127.0.0.1:5432). Measured in the same run, alternating:

- ``bare``: opensearch-py's ``search`` with the same body and routing on a bare client, the JSON
  answer parsed (what any OpenSearch caller pays);
- ``engine``: ``OpenSearchEngine.find``: the body built, the same request, the candidates confirmed
  and scored in one PostgreSQL statement against ``search_documents`` and live columns.

``ratios.engine_over_bare_p50`` = engine p50 / bare p50. The last line printed is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import statistics
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from sqlalchemy import select, text

from bench.common import bench_workspace, log, migrated_app

DEFAULT_URL = "postgresql://postgres@127.0.0.1:5432/morket_bench_search_os"
WORDS = ["acme", "globex", "initech", "umbrella", "hooli", "stark", "wayne", "wonka", "tyrell", "soylent"]


def _server(answer: bytes) -> ThreadingHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            self.send_response(200)
            self.send_header("Content-Type", "application/json; charset=UTF-8")
            self.send_header("Content-Length", str(len(answer)))
            self.end_headers()
            self.wfile.write(answer)

        def log_message(self, *args) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    return httpd


def _table(rows: int):
    from morket.extensions import db
    from morket.search import tasks
    from morket.tables import service
    from morket.tables.models import Table

    workspace, owner = bench_workspace(f"bench-search-os-{rows}", f"Search OpenSearch bench {rows}")
    table = db.session.scalars(select(Table).where(Table.workspace_id == workspace.id)).first()
    if table is None:
        log(f"building a table of {rows} rows")
        table = service.create_table(
            workspace,
            owner,
            "Companies",
            columns=[{"name": "Company", "type": "text"}, {"name": "Domain", "type": "domain"}],
        )
        batch = []
        for i in range(rows):
            word = WORDS[i % len(WORDS)]
            batch.append({"Company": f"{word.title()} Corp {i}", "Domain": f"{word}{i}.com"})
            if len(batch) == 5000:
                service.insert_rows(workspace, owner, table, batch)
                batch = []
        if batch:
            service.insert_rows(workspace, owner, table, batch)
        db.session.commit()
        tasks.reindex([table.id])
    return workspace, table


def _p(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=20000)
    parser.add_argument("--candidates", type=int, default=600)
    parser.add_argument("--rounds", type=int, default=300)
    args = parser.parse_args(argv)
    app, _url = migrated_app(DEFAULT_URL)
    with app.app_context():
        result = _run(args)
    print(json.dumps(result), flush=True)
    return result


def _run(args: argparse.Namespace) -> dict[str, Any]:
    from morket.extensions import db
    from morket.search import opensearch as osx
    from morket.search.engine import Filters, parse_query

    workspace, table = _table(args.rows)
    docs = db.session.execute(
        text(
            "SELECT workspace_id, table_id, row_id, column_id, value, norm, states, providers "
            "FROM search_documents WHERE table_id = :t AND value ILIKE 'acme%' ORDER BY row_id LIMIT :n"
        ),
        {"t": table.id, "n": args.candidates},
    ).mappings()
    index = osx.index_name("development")
    hits = [
        {
            "_index": index,
            "_id": osx.doc_id(d["table_id"], d["row_id"], d["column_id"]),
            "_score": 3.0,
            "_routing": str(d["workspace_id"]),
            "_source": {**d, "states": list(d["states"]), "providers": list(d["providers"])},
        }
        for d in docs
    ]
    answer = {
        "took": 2,
        "timed_out": False,
        "_shards": {"total": 1, "successful": 1, "skipped": 0, "failed": 0},
        "hits": {"max_score": 3.0, "hits": hits},
    }
    httpd = _server(json.dumps(answer).encode())
    url = f"http://127.0.0.1:{httpd.server_address[1]}"
    engine = osx.OpenSearchEngine(url, "development")
    bare = osx.client(url)
    query = parse_query("acme corp")
    body = osx.search_body(workspace.id, query, Filters(), 200)
    found = engine.find(workspace.id, query, Filters(), 200)
    log(f"{len(hits)} candidates, {len(found)} kept")
    bare_s: list[float] = []
    engine_s: list[float] = []
    for i in range(args.rounds):
        order = (0, 1) if i % 2 == 0 else (1, 0)
        for side in order:
            started = time.perf_counter()
            if side == 0:
                bare.search(index=index, body=body, routing=osx.routing(workspace.id))
                bare_s.append(time.perf_counter() - started)
            else:
                engine.find(workspace.id, query, Filters(), 200)
                db.session.rollback()
                engine_s.append(time.perf_counter() - started)
    httpd.shutdown()
    figures = {
        "rows": args.rows,
        "candidates": len(hits),
        "kept": len(found),
        "rounds": args.rounds,
        "bare_p50_ms": round(statistics.median(bare_s) * 1000, 3),
        "bare_p95_ms": round(_p(bare_s, 0.95) * 1000, 3),
        "engine_p50_ms": round(statistics.median(engine_s) * 1000, 3),
        "engine_p95_ms": round(_p(engine_s, 0.95) * 1000, 3),
    }
    ratios = {
        "engine_over_bare_p50": round(figures["engine_p50_ms"] / figures["bare_p50_ms"], 2),
        "engine_over_bare_p95": round(figures["engine_p95_ms"] / figures["bare_p95_ms"], 2),
    }
    return {"figures": figures, "ratios": ratios}


if __name__ == "__main__":
    main()
