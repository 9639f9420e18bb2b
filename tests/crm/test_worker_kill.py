"""A real worker SIGKILLed in the middle of a CRM push and of a CRM pull, with committed data.

A push: after a new worker and the reconciler, every row of the run ends final (success), each
row holds one record id, and the HubSpot sandbox holds exactly one contact per row (upserts by
key never duplicate). A pull: the pull's lease lapses, ``reconcile_pulls`` queues it again, the
new worker goes on from the cursor, and the table holds each CRM record once.

Outcomes are asserted, not timings; the waits only bound how long a broken build can hang.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import psutil
import pytest
import sqlalchemy as sa

from morket.core.jobs import relay_outbox
from morket.core.models import OutboxMessage
from morket.crm import mapping as mappings
from morket.crm import pull, push, push_executor, service
from morket.crm.pull_models import CrmPull
from morket.extensions import db
from morket.runs.models import Run, RunRow
from tests.crm.push_support import COLUMNS, person
from tests.support.waiting import wait_until

ROOT = Path(__file__).resolve().parents[2]
PUSH_ROWS = 1000
PULL_RECORDS = 1500


class Setup:
    """A workspace whose owner connected HubSpot, committed for real for the worker processes to see."""

    def __init__(self, crm) -> None:
        from morket.accounts.models import User
        from morket.workspaces.models import Membership, Workspace

        tag = uuid.uuid4().hex[:10]
        self.user = User(email=f"crmkill-{tag}@example.com", name="Kill", password_hash="not-a-hash")
        self.workspace = Workspace(slug=f"crmkill-{tag}", name=f"CRM kill {tag}")
        db.session.add_all([self.user, self.workspace])
        db.session.flush()
        db.session.add(Membership(workspace_id=self.workspace.id, user_id=self.user.id, role="owner"))
        db.session.commit()
        url, state = service.start_connect(self.workspace, self.user, "hubspot", "http://localhost/cb/hubspot")
        code = parse_qs(urlsplit(crm.consent(url)).query)["code"][0]
        service.complete_connect(self.user, "hubspot", state=state, session_states=[state], code=code, error=None)
        db.session.commit()
        self.tables: list[int] = []

    def remove(self) -> None:
        from morket.accounts.models import User
        from morket.tables import service as tables
        from morket.tables.models import Table
        from morket.workspaces.models import Workspace

        db.session.rollback()
        workspace = db.session.get(Workspace, self.workspace.id)
        for table_id in self.tables:
            table = db.session.get(Table, table_id)
            if table is not None:
                tables.delete_table(workspace, None, table)
        db.session.execute(sa.delete(Workspace).where(Workspace.id == self.workspace.id))
        db.session.execute(sa.delete(User).where(User.id == self.user.id))
        db.session.commit()


@pytest.fixture
def committed(app, crm, sandbox_server) -> Iterator[Setup]:
    with app.app_context():
        setup = Setup(crm)
        try:
            yield setup
        finally:
            sandbox_server.configure("hubspot", latency_ms=0)
            db.session.rollback()
            db.session.execute(
                sa.update(Run).where(Run.status.in_(("queued", "running", "paused"))).values(status="cancelled")
            )
            db.session.execute(
                sa.update(CrmPull).where(CrmPull.status.in_(("queued", "running"))).values(status="cancelled")
            )
            db.session.execute(sa.delete(OutboxMessage))
            db.session.commit()
            setup.remove()


def _worker(app, queue: str) -> subprocess.Popen:
    settings = app.config["MORKET"]
    env = dict(os.environ)
    env.update(
        MORKET_ENV="development",
        MORKET_DATABASE_URL=app.config["SQLALCHEMY_DATABASE_URI"],
        MORKET_REDIS_URL=app.config["REDIS_URL"],
        MORKET_MASTER_KEY=settings["MASTER_KEY"].hex(),
        MORKET_LOG_LEVEL="WARNING",
        MORKET_ENRICHMENT_LEASE_SECONDS="5",
        PYTHONPATH=str(ROOT),
        **{
            f"MORKET_{name}": str(settings[name])
            for name in ("HUBSPOT_API_URL", "HUBSPOT_AUTH_URL", "HUBSPOT_CLIENT_ID", "HUBSPOT_CLIENT_SECRET")
        },
    )
    return subprocess.Popen(  # our own entry point, in its own process group (the work horse too)
        [sys.executable, "-m", "workers", queue], env=env, cwd=ROOT, start_new_session=True
    )


def _kill(proc: subprocess.Popen) -> None:
    """SIGKILL the worker and its work horse (RQ puts the horse in a process group of its own)."""
    if proc.poll() is None:
        horses = psutil.Process(proc.pid).children(recursive=True)
        os.killpg(proc.pid, signal.SIGKILL)
        for horse in horses:
            with contextlib.suppress(psutil.NoSuchProcess):
                horse.kill()
        psutil.wait_procs(horses, timeout=10)
    proc.wait(10)


def _records(crm) -> int:
    return crm.state("hubspot")["records"]["contacts"]


def test_sigkill_mid_push_ends_every_row_and_duplicates_no_record(app, committed, crm, sandbox_server):
    from morket.tables import rows as table_rows
    from morket.tables import service as tables

    setup = committed
    table = tables.create_table(setup.workspace, setup.user, "Kill push", columns=COLUMNS)
    setup.tables.append(table.id)
    table_rows.insert_rows(setup.workspace, setup.user, table, [person(i) for i in range(PUSH_ROWS)])
    by_name = {c.name: c.id for c in table.live_columns}
    payload = {"object": "contacts", "key_field": "email", "key_column_id": by_name["Email"],
               "fields": [{"column_id": by_name["First name"], "field": "firstname"},
                          {"column_id": by_name["Job title"], "field": "jobtitle"}]}  # fmt: skip
    objects = service.describe_objects(setup.workspace, "hubspot")
    mapping, _ = mappings.save_mapping(setup.workspace, setup.user, table, "hubspot", objects, payload)
    record_column = mapping.record_id_column_id
    sandbox_server.configure("hubspot", latency_ms=400)  # a batch call takes 0.4 s: the kill lands mid-push
    run = push.start_push(setup.workspace, setup.user, table, "hubspot", scope="all")
    run_id = run.id
    db.session.commit()
    relay_outbox()
    first = _worker(app, "enrichment")
    try:
        assert wait_until(lambda: _records(crm) >= 200, timeout=90, interval=0.1), "the worker pushed nothing"
        _kill(first)
    finally:
        _kill(first)
    at_kill = _records(crm)
    assert at_kill < PUSH_ROWS, "the push ended before the kill"
    sandbox_server.configure("hubspot", latency_ms=50)
    second = _worker(app, "enrichment")
    try:

        def finished() -> bool:
            db.session.rollback()
            push_executor.reconcile()  # what the scheduler does every 15 s: expired leases, runs with no job
            relay_outbox()
            db.session.expire_all()
            return db.session.get(Run, run_id).finished

        assert wait_until(finished, timeout=180, interval=1), push.progress(db.session.get(Run, run_id))
    finally:
        _kill(second)
    db.session.rollback()
    done = db.session.get(Run, run_id)
    assert (done.status, done.failed, done.succeeded) == ("completed", 0, PUSH_ROWS)
    states = db.session.execute(
        sa.select(RunRow.status, RunRow.state, sa.func.count()).where(RunRow.run_id == run_id)
        .group_by(RunRow.status, RunRow.state)
    ).all()  # fmt: skip
    assert [(s, st) for s, st, _ in states] == [("done", "success")] and states[0][2] == PUSH_ROWS
    from tests.crm.push_support import cells

    found = cells(db, table, record_column)
    ids = [value for value, _ in found.values()]
    assert len(ids) == PUSH_ROWS and all(ids) and len(set(ids)) == PUSH_ROWS
    assert all(state[str(record_column)]["status"] == "success" for _, state in found.values())
    assert _records(crm) == PUSH_ROWS  # no contact twice, none lost


def test_sigkill_mid_pull_is_requeued_and_writes_no_duplicate_row(app, committed, crm, sandbox_server):
    from tests.crm.test_pull import contacts, table_rows

    setup = committed
    made = crm.http.post(
        f"{crm.base}/_sandbox/hubspot/seed", json={"object": "contacts", "records": contacts(PULL_RECORDS)}
    ).raise_for_status().json()  # fmt: skip
    source = pull.create_source(setup.workspace, setup.user, "hubspot", "object",
                                {"object": "contacts", "fields": ["email", "firstname"]})  # fmt: skip
    setup.tables.append(source.table_id)
    started = pull.start_pull(setup.workspace, setup.user, source)
    pull_id = started.id
    db.session.commit()
    relay_outbox()
    sandbox_server.configure("hubspot", latency_ms=400)  # a page of 100 takes 0.4 s

    def read() -> CrmPull:
        db.session.rollback()
        return db.session.get(CrmPull, pull_id)

    first = _worker(app, "io")
    try:
        assert wait_until(lambda: read().rows_read >= 300, timeout=90, interval=0.1), "the worker pulled nothing"
        _kill(first)
    finally:
        _kill(first)
    assert read().status == "running" and read().rows_read < PULL_RECORDS
    assert pull.reconcile_pulls() == {"requeued": 0}  # the dead job's lease has not lapsed yet
    sandbox_server.configure("hubspot", latency_ms=20)
    second = _worker(app, "io")
    try:

        def finished() -> bool:
            pull.reconcile_pulls()  # what the scheduler does every 15 s
            relay_outbox()
            return read().status not in pull.LIVE

        assert wait_until(finished, timeout=pull.ALIVE_SECONDS + 90, interval=1), read().status
    finally:
        _kill(second)
    done = read()
    assert done.status == "done", done.error
    rows = table_rows(db, source.table_id)
    assert len(rows) == PULL_RECORDS  # pages read again after the kill wrote no row twice
    assert sorted(r["HubSpot ID"] for r in rows) == sorted(made["ids"])
