"""CSV bench: Morket's import and export against PostgreSQL's own COPY, in the same run.

Usage: ``python -m bench.csv --rows 100000``

Generates an N-row, 10-column CSV of mixed types (text, domains, emails, whole and decimal
numbers, dates), then measures in the bench database (``MORKET_BENCH_DATABASE_URL``, else
``morket_bench_csv`` on the PostgreSQL at 127.0.0.1:5432, created and migrated when missing):

- ``import_s``: Morket's import job (detection, typing of every cell, COPY, commit) run in a child
  process, whose peak resident memory is ``import_peak_rss_mb``; the baseline ``copy_import_s`` is
  ``psql \\copy`` of the same file into a logged table with the same column types and indexes
  (identity primary key, unique ``pos``);
- ``export_s`` and ``export_first_byte_s``: the export route streamed through the WSGI app; the
  baseline ``copy_export_s`` is ``psql \\copy (SELECT …) TO STDOUT`` of the same rows and columns.

The last line printed is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
from datetime import date, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import text
from sqlalchemy.engine import make_url

from bench.common import bench_workspace, ensure_database, log

DEFAULT_URL = "postgresql://postgres@127.0.0.1:5432/morket_bench_csv"
HEADER = ["Company", "Domain", "Email", "Employees", "Revenue", "Founded", "Stage", "Score", "City", "Notes"]
_WORDS = ("acme", "globex", "initech", "umbrella", "hooli", "stark", "wayne", "tyrell", "cyberdyne", "soylent")
_CITIES = ("Berlin", "Paris", "Oslo", "Lisbon", "Austin", "Toronto", "São Paulo", "Kraków", "Zürich", "Tokyo")
_STAGES = ("Lead", "Qualified", "Customer", "Churned")


def generate(path: Path, rows: int, seed: int = 1) -> None:
    """Write an N-row CSV of mixed types (quotes, commas and accents included) to ``path``."""
    import csv

    rng = random.Random(seed)
    start = date(1990, 1, 1)
    with open(path, "w", encoding="utf-8", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(HEADER)
        for i in range(rows):
            word = _WORDS[rng.randrange(len(_WORDS))]
            writer.writerow(
                [
                    f'{word.title()} "{i % 97}", Inc.' if i % 10 == 0 else f"{word.title()} {i}",
                    f"{word}{i}.com",
                    f"person{i}@{word}.com",
                    rng.randrange(1, 100_000),
                    f"{rng.randrange(0, 10_000_000)}.{rng.randrange(100):02d}",
                    (start + timedelta(days=rng.randrange(12_000))).isoformat(),
                    _STAGES[rng.randrange(len(_STAGES))],
                    f"{rng.randrange(0, 10_000) / 100:.2f}",
                    _CITIES[rng.randrange(len(_CITIES))],
                    " ".join(_WORDS[rng.randrange(len(_WORDS))] for _ in range(6)),
                ]
            )


def _app(url: str):
    os.environ.setdefault("MORKET_ENV", "development")
    from morket import create_app

    redis_url = os.environ.get("MORKET_REDIS_URL") or "redis://127.0.0.1:6379/0"
    return create_app(
        {
            "SQLALCHEMY_DATABASE_URI": url,
            "REDIS_URL": redis_url,
            "TESTING": True,
            # The bench times the streamed download, so no export is sent to the background job.
            "MORKET": {
                "DATAOPS_DIR": os.path.join(tempfile.gettempdir(), "morket-bench-csv"),
                "EXPORT_BACKGROUND_ROWS": 10**12,
            },
        }
    )


def child_import(url: str, path: Path) -> dict[str, Any]:
    """Run one import as the job would, in this process; report its time and peak memory."""
    from morket.dataops import service, tasks

    app = _app(url)
    with app.app_context():
        from morket.extensions import db

        workspace, user = bench_workspace("bench-csv", "Bench CSV")
        with open(path, "rb") as handle:
            run = service.upload_import(workspace, user, handle, path.name)
        mapping = [
            {"source": i, "target": "new", "name": name, "type": kind}
            for i, (name, kind) in enumerate(zip(run.settings["header"], run.settings["types"], strict=True))
        ]
        service.start_import(workspace, user, run, mapping=mapping, table_name=f"bench {path.stem}")
        db.session.commit()
        began = time.perf_counter()
        run = tasks.run_import(run.id)
        elapsed = time.perf_counter() - began
        service.upload_path(run).unlink(missing_ok=True)
        peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        return {
            "status": run.status,
            "rows": run.rows_out,
            "table_id": run.table_id,
            "import_s": elapsed,
            "peak_rss_mb": peak_mb,
            "types": run.settings["types"],
        }


def _psql(url: str, command: str, stdout: Any = subprocess.DEVNULL) -> float:
    conninfo = make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
    began = time.perf_counter()
    subprocess.run(["psql", conninfo, "-v", "ON_ERROR_STOP=1", "-q", "-c", command], check=True, stdout=stdout)
    return time.perf_counter() - began


def _sql_type(kind: str) -> str:
    from morket.tables.storage import sql_type

    return sql_type(kind)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Run the bench and print one JSON line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, required=True)
    parser.add_argument("--child-import", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    url = os.environ.get("MORKET_BENCH_DATABASE_URL", DEFAULT_URL)
    sa_url = make_url(url).set(drivername="postgresql+psycopg").render_as_string(hide_password=False)
    if args.child_import is not None:
        result = child_import(sa_url, args.child_import)
        print(json.dumps(result), flush=True)
        return result
    if args.rows < 1:
        parser.error("--rows must be at least 1")
    ensure_database(sa_url)
    from flask_migrate import upgrade

    app = _app(sa_url)
    with app.app_context():
        upgrade(directory=os.path.join(app.root_path, "..", "migrations"), revision="heads")
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / f"bench-{args.rows}.csv"
        began = time.perf_counter()
        generate(path, args.rows)
        figures: dict[str, Any] = {
            "generate_s": round(time.perf_counter() - began, 2),
            "file_mb": round(path.stat().st_size / 1e6, 1),
        }
        log(f"generated {path.stat().st_size / 1e6:.1f} MB; importing in a child process")
        child = subprocess.run(
            [sys.executable, "-m", "bench.csv", "--rows", str(args.rows), "--child-import", str(path)],
            check=True,
            capture_output=True,
            text=True,
            env={**os.environ, "MORKET_BENCH_DATABASE_URL": url},
        )
        imported = json.loads(child.stdout.strip().splitlines()[-1])
        if imported["status"] != "done" or imported["rows"] != args.rows:
            raise SystemExit(f"the import did not load every row: {imported}")
        with app.app_context():
            result = _compare(app, sa_url, path, args.rows, imported, figures)
    print(json.dumps(result), flush=True)
    return result


def _compare(app, url: str, path: Path, rows: int, imported: dict[str, Any], figures: dict[str, Any]) -> dict[str, Any]:
    from morket.accounts.service import start_session
    from morket.extensions import db
    from morket.tables import service as tables

    workspace, user = bench_workspace("bench-csv", "Bench CSV")
    table = tables.get_table_or_404(workspace, imported["table_id"])
    cols = [(c.storage_name, c.type) for c in table.live_columns]
    baseline = f"bench_copy_{os.getpid()}"
    defs = ", ".join(f"{name} {_sql_type(kind)}" for name, kind in cols)
    db.session.execute(text(f"DROP TABLE IF EXISTS public.{baseline}; DROP SEQUENCE IF EXISTS public.{baseline}_pos"))
    db.session.execute(text(f"CREATE SEQUENCE public.{baseline}_pos"))
    db.session.execute(
        text(
            f"CREATE TABLE public.{baseline} (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, "
            f"pos bigint NOT NULL DEFAULT nextval('public.{baseline}_pos'), cell_state jsonb, {defs}, "
            f"CONSTRAINT {baseline}_pos_key UNIQUE (pos) DEFERRABLE INITIALLY IMMEDIATE)"
        )
    )
    db.session.commit()
    names = ", ".join(name for name, _ in cols)
    copy_import_s = _psql(url, f"\\copy public.{baseline} ({names}) FROM '{path}' WITH (FORMAT csv, HEADER true)")
    db.session.execute(text(f"DROP TABLE public.{baseline}; DROP SEQUENCE public.{baseline}_pos"))
    db.session.commit()
    with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text(f"VACUUM ANALYZE ut.{table.storage_name}"))

    client = app.test_client()
    with client.session_transaction() as session:
        session["_user_id"] = start_session(user)
        session["_fresh"] = True
    db.session.commit()
    began = time.perf_counter()
    resp = client.get(f"/w/{workspace.slug}/tables/{table.id}/export.csv", buffered=False)
    chunks = iter(resp.response)
    size = len(next(chunks))
    first_byte_s = time.perf_counter() - began
    for chunk in chunks:
        size += len(chunk)
    resp.close()
    export_s = time.perf_counter() - began
    if size < path.stat().st_size // 2:
        raise SystemExit(f"the export streamed {size} bytes for a {path.stat().st_size}-byte file: not a full export")
    select_sql = f"SELECT {names} FROM ut.{table.storage_name} ORDER BY pos"  # generated names
    copy_export_s = _psql(url, f"\\copy ({select_sql}) TO STDOUT WITH (FORMAT csv)")

    tables.delete_table(workspace, user, table)
    db.session.commit()
    figures.update(
        {
            "import_s": round(imported["import_s"], 3),
            "copy_import_s": round(copy_import_s, 3),
            "import_peak_rss_mb": round(imported["peak_rss_mb"], 1),
            "import_rows_per_s": round(rows / imported["import_s"]),
            "export_s": round(export_s, 3),
            "export_first_byte_s": round(first_byte_s, 4),
            "copy_export_s": round(copy_export_s, 3),
            "export_mb": round(size / 1e6, 1),
            "column_types": imported["types"],
        }
    )
    return {
        "bench": "csv",
        "rows": rows,
        "figures": figures,
        "ratios": {
            "import_over_copy": round(imported["import_s"] / copy_import_s, 2),
            "export_over_copy": round(export_s / copy_export_s, 2),
        },
    }


if __name__ == "__main__":
    main()
