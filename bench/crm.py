"""CRM push bench: a push of N rows to the HubSpot sandbox, at its rate limit and against bare batch calls.

Usage: ``python -m bench.crm --rows 5000 [--window 0]``

Starts the CRM sandboxes in this process, connects a bench workspace to HubSpot through the real
OAuth code exchange, and fills a table with N people (email, names, company, title), in the bench
database (``MORKET_BENCH_DATABASE_URL``, else ``morket_bench_crm`` on 127.0.0.1:5432, created and
migrated when missing) and on ``MORKET_REDIS_URL`` (else ``redis://127.0.0.1:6379/0``). The push
runs as it does in production: a run of the row-run engine worked by two jobs (threads here, each
with its own app context and database session), batch upserts of 100 by email.

- rate phase: the sandbox allows ``--window`` calls per rolling ten seconds (default: half the
  push's calls, so the push spans about two windows). Allowed records/s = window × 100 / 10.
  ``ratios.push_rate_over_allowed`` = N / (push wall time) / allowed (goal >= 0.95), and
  ``figures.rate_limited_calls``: the calls the sandbox refused with a 429 (goal: none). The window
  is rolling, so a whole window may go at once: a push of two windows' calls can take one interval.
- overhead phase: no rate limit, a fresh sandbox. Bare: the same batch-upsert calls (same bodies)
  from two threads through one httpx client, nothing else. Morket: the push of the same rows.
  ``figures.push_overhead_ms_per_row`` = (Morket's wall time − bare wall time) / N (goal <= 1).

The last line printed is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
from sqlalchemy.engine import make_url

from bench.common import bench_workspace, ensure_database, log

DEFAULT_URL = "postgresql://postgres@127.0.0.1:5432/morket_bench_crm"
ROOT = Path(__file__).resolve().parent.parent
JOBS = 2
CLIENT = {"HUBSPOT_CLIENT_ID": "sandbox-morket-hubspot", "HUBSPOT_CLIENT_SECRET": "sandbox-hubspot-secret-0001"}


def _app(url: str, redis_url: str, settings: dict[str, Any]):
    os.environ.setdefault("MORKET_ENV", "development")
    from morket import create_app

    return create_app({"SQLALCHEMY_DATABASE_URI": url, "REDIS_URL": redis_url, "TESTING": True, "MORKET": settings})


class Sandbox:
    """The sandboxes on a free loopback port in a thread."""

    def __init__(self) -> None:
        from morket.providers.sandboxes import serve

        self.server = serve("127.0.0.1", 0)
        threading.Thread(target=self.server.serve_forever, name="sandbox", daemon=True).start()
        self.base = f"http://127.0.0.1:{self.server.server_port}"
        self.control = httpx.Client(timeout=30)

    def post(self, action: str, **values: Any) -> dict[str, Any]:
        return self.control.post(f"{self.base}/_sandbox/hubspot/{action}", json=values).raise_for_status().json()

    def rate_limited(self) -> int:
        return self.control.get(f"{self.base}/_sandbox/hubspot/served").raise_for_status().json()["rate_limited"]

    def contacts(self) -> int:
        return self.control.get(f"{self.base}/_sandbox/hubspot/state").raise_for_status().json()["records"]["contacts"]

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.control.close()


def _connect(sandbox: Sandbox, workspace) -> int:
    """A HubSpot connection through the consent page and the real code exchange; return its id."""
    import re

    from flask import current_app

    from morket.crm import oauth, tokens
    from morket.crm.models import CrmConnection
    from morket.crm.providers import SPECS
    from morket.crm.service import get_connection
    from morket.extensions import db

    settings = current_app.config["MORKET"]
    redirect_uri = "http://localhost/connections/hubspot/callback"
    state, verifier = oauth.new_state()
    authorize = oauth.authorization_url(SPECS["hubspot"], settings, redirect_uri, state, verifier)
    page = sandbox.control.get(authorize)
    fields = {k: v.replace("&amp;", "&") for k, v in re.findall(r'name="([^"]+)" value="([^"]*)"', page.text)}
    back = sandbox.control.post(authorize.split("?")[0], data={**fields, "decision": "allow"}).headers["Location"]
    found = oauth.exchange_code(SPECS["hubspot"], settings, redirect_uri, parse_qs(urlsplit(back).query)["code"][0],
                                verifier)  # fmt: skip
    connection = get_connection(workspace, "hubspot") or CrmConnection(workspace_id=workspace.id, provider="hubspot")
    connection.account_id, connection.account_name, connection.scopes = found.account_id, found.account_name, []
    connection.access_ciphertext = tokens.seal(workspace.id, "hubspot", "access", found.access_token)
    connection.refresh_ciphertext = tokens.seal(workspace.id, "hubspot", "refresh", found.refresh_token)
    connection.key_fingerprint = tokens.fingerprint()
    connection.expires_at = found.expires_at
    connection.token_version = (connection.token_version or 0) + 1
    db.session.add(connection)
    db.session.commit()
    return connection.id


def _forget_limits(redis, connection_id: int) -> None:
    """A fresh sandbox: drop what the limiter learned of the last one (its shape and its window)."""
    redis.delete(f"morket:crm-rate:{connection_id}", f"morket:throttle:window:crm:hubspot:{connection_id}",
                 f"morket:throttle:window:crm:hubspot:{connection_id}:blocked")  # fmt: skip


def _people(rows: int, salt: str) -> list[dict[str, Any]]:
    return [
        {"Email": f"p{i}.{salt}@bench{i % 97}.example", "First name": f"First{i}", "Last name": f"Last{i}",
         "Company": f"Company {i % 211}", "Job title": "VP Sales" if i % 2 else "CTO"}
        for i in range(rows)
    ]  # fmt: skip


def _table(workspace, owner, rows: int, salt: str):
    """A fresh table of ``rows`` people with its HubSpot mapping saved."""
    from morket.crm import mapping, service
    from morket.extensions import db
    from morket.tables import rows as table_rows
    from morket.tables import service as tables

    columns = [{"name": "Email", "type": "email"}] + [
        {"name": n, "type": "text"} for n in ("First name", "Last name", "Company", "Job title")
    ]
    table = tables.create_table(workspace, owner, f"Push bench {salt}", columns=columns)
    people = _people(rows, salt)
    for start in range(0, rows, 5000):
        table_rows.insert_rows(workspace, owner, table, people[start : start + 5000])
    ids = {c.name: c.id for c in table.live_columns}
    pairs = {"First name": "firstname", "Last name": "lastname", "Company": "company", "Job title": "jobtitle"}
    payload = {"object": "contacts", "key_field": "email", "key_column_id": ids["Email"],
               "fields": [{"column_id": ids[c], "field": f} for c, f in pairs.items()]}  # fmt: skip
    mapping.save_mapping(workspace, owner, table, "hubspot", service.describe_objects(workspace, "hubspot"), payload)
    db.session.commit()
    return table, people


def _push(app, workspace, owner, table) -> float:
    """Start a push and work it with two jobs (threads) to the end; return its wall time."""
    from morket.crm import push
    from morket.crm.push_executor import work
    from morket.extensions import db
    from morket.runs.models import Run

    run = push.start_push(workspace, owner, table, "hubspot", scope="all")
    db.session.commit()
    run_id = run.id
    started = time.perf_counter()

    def job(slot: int) -> None:
        with app.app_context():
            while True:
                work(run_id, slot, budget=600)
                finished = db.session.get(Run, run_id, populate_existing=True).finished
                db.session.commit()
                if finished:
                    return

    with ThreadPoolExecutor(JOBS) as pool:
        list(pool.map(job, range(JOBS)))
    elapsed = time.perf_counter() - started
    run = db.session.get(Run, run_id, populate_existing=True)
    if run.status != "completed" or run.failed:
        raise SystemExit(f"push {run_id} ended {run.status} with {run.failed} failed rows")
    return elapsed


def _bare(base: str, token: str, people: list[dict[str, Any]]) -> float:
    """The same batch upserts, two threads, one client, nothing else."""
    bodies = [
        {"inputs": [{"idProperty": "email", "id": p["Email"], "objectWriteTraceId": str(i + start),
                     "properties": {"firstname": p["First name"], "lastname": p["Last name"],
                                    "company": p["Company"], "jobtitle": p["Job title"]}}
                    for i, p in enumerate(people[start : start + 100])]}
        for start in range(0, len(people), 100)
    ]  # fmt: skip
    url = f"{base}/hubspot/crm/v3/objects/contacts/batch/upsert"
    with httpx.Client(timeout=30) as client:
        started = time.perf_counter()

        def send(body: dict[str, Any]) -> None:
            client.post(url, json=body, headers={"Authorization": f"Bearer {token}"}).raise_for_status()

        with ThreadPoolExecutor(JOBS) as pool:
            list(pool.map(send, bodies))
        return time.perf_counter() - started


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, required=True)
    parser.add_argument("--window", type=int, default=0, help="sandbox calls per 10 s (0: half the push's calls)")
    args = parser.parse_args(argv)
    if args.rows < 100:
        parser.error("--rows must be at least 100")
    url = os.environ.get("MORKET_BENCH_DATABASE_URL", DEFAULT_URL)
    sa_url = make_url(url).set(drivername="postgresql+psycopg").render_as_string(hide_password=False)
    redis_url = os.environ.get("MORKET_REDIS_URL") or "redis://127.0.0.1:6379/0"
    ensure_database(sa_url)
    sandbox = Sandbox()
    settings = {**CLIENT, "HUBSPOT_API_URL": f"{sandbox.base}/hubspot", "HUBSPOT_AUTH_URL": f"{sandbox.base}/hubspot",
                "ENRICHMENT_JOBS_PER_RUN": JOBS}  # fmt: skip
    from flask_migrate import upgrade

    from morket.crm import tokens
    from morket.extensions import db

    app = _app(sa_url, redis_url, settings)
    calls = -(-args.rows // 100)
    window = args.window or max(2, calls // 2)
    figures: dict[str, Any] = {"rows": args.rows, "calls": calls, "jobs": JOBS, "window_calls_per_10s": window}
    try:
        with app.app_context():
            upgrade(directory=str(ROOT / "migrations"), revision="heads")
            workspace, owner = bench_workspace("bench-crm", "Bench CRM")
            redis = app.extensions["morket_redis"]

            # Rate phase.
            sandbox.post("reset")
            connection_id = _connect(sandbox, workspace)
            _forget_limits(redis, connection_id)
            sandbox.post("config", window_limit=window)
            table, _ = _table(workspace, owner, args.rows, uuid.uuid4().hex[:8])
            log(f"rate phase: {args.rows} rows, {calls} calls, {window} calls per 10 s")
            rate_s = _push(app, workspace, owner, table)
            assert sandbox.contacts() == args.rows, "the sandbox does not hold one contact per row"
            allowed = window * 100 / 10.0
            figures |= {"rate_push_s": round(rate_s, 3), "allowed_records_per_s": allowed,
                        "pushed_records_per_s": round(args.rows / rate_s, 1),
                        "rate_limited_calls": sandbox.rate_limited()}  # fmt: skip

            # Overhead phase: no limit; bare calls first, then Morket, each on a fresh sandbox.
            sandbox.post("reset")
            connection_id = _connect(sandbox, workspace)
            _forget_limits(redis, connection_id)
            sandbox.post("config", window_limit=1_000_000)
            salt = uuid.uuid4().hex[:8]
            table, people = _table(workspace, owner, args.rows, salt)
            token = tokens.token_for_use(connection_id, app.config["MORKET"]).access_token
            db.session.commit()
            log("overhead phase: bare batch upserts")
            bare_s = _bare(sandbox.base, token, people)
            sandbox.post("reset")
            connection_id = _connect(sandbox, workspace)
            _forget_limits(redis, connection_id)
            sandbox.post("config", window_limit=1_000_000)
            log("overhead phase: Morket push")
            morket_s = _push(app, workspace, owner, table)
            figures |= {"bare_s": round(bare_s, 3), "morket_s": round(morket_s, 3),
                        "push_overhead_ms_per_row": round((morket_s - bare_s) * 1000 / args.rows, 3)}  # fmt: skip
    finally:
        sandbox.stop()
    result = {
        "figures": figures,
        "ratios": {"push_rate_over_allowed": round(args.rows / rate_s / allowed, 3)},
    }
    print(json.dumps(result), flush=True)
    return result


if __name__ == "__main__":
    main()
