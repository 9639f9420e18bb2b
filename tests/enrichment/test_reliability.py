"""Enrichment under failure, with real worker and scheduler processes and committed data.

- A worker killed with SIGKILL in the middle of a 5,000-row run: after the reconciler every row
  has a final state, the credits charged equal the price once per delivered value, no
  idempotency key repeats.
- Redis (our own embedded server, never the shared one) stopped for 30 s mid-run: the run
  pauses, nothing moves while Redis is away, and the run completes after Redis returns. RQ's
  worker process exits when Redis disappears under a running job, so the test restarts exited
  workers as a process manager would; the run's state (all in PostgreSQL) is what carries over.

Outcomes are asserted, not timings; the waits only bound how long a broken build can hang.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from flask import Flask

from morket.enrichment import service
from morket.enrichment.models import EnrichmentAttempt, EnrichmentRun, EnrichmentRunRow
from morket.extensions import db
from tests.enrichment.test_engine_support import enrichment_column, grant, people_table
from tests.support.processes import kill_tree
from tests.support.sandbox import SandboxServer
from tests.support.waiting import wait_until

ROOT = Path(__file__).resolve().parents[2]


class Committed:
    """A workspace, owner and people table committed for real, for other processes to see."""

    made: list[Committed] = []

    def __init__(self, rows: int) -> None:
        from morket.accounts.models import User
        from morket.workspaces.models import Membership, Workspace

        tag = uuid.uuid4().hex[:10]
        self.user = User(email=f"rel-{tag}@example.com", name="Reliability", password_hash="not-a-hash")
        self.workspace = Workspace(slug=f"rel-{tag}", name=f"Reliability {tag}")
        db.session.add_all([self.user, self.workspace])
        db.session.flush()
        db.session.add(Membership(workspace_id=self.workspace.id, user_id=self.user.id, role="owner"))
        grant(self.workspace, 100_000)
        self.table, self.ids = people_table(self.workspace, self.user, rows)
        self.column = enrichment_column(self.workspace, self.user, self.table, self.ids)
        db.session.commit()
        Committed.made.append(self)

    def remove(self) -> None:
        """Drop the table and delete the workspace and owner (cascades take runs, ledger, members)."""
        from morket.accounts.models import User
        from morket.tables import service as tables
        from morket.tables.models import Table
        from morket.workspaces.models import Workspace

        workspace = db.session.get(Workspace, self.workspace.id)
        table = db.session.get(Table, self.table.id)
        if table is not None:
            tables.delete_table(workspace, None, table)
        db.session.execute(sa.delete(Workspace).where(Workspace.id == self.workspace.id))
        db.session.execute(sa.delete(User).where(User.id == self.user.id))
        db.session.commit()

    def start(self) -> int:
        run = service.start_run(self.workspace, self.user, self.table, self.column, scope="all", confirm=True)
        db.session.commit()  # the outbox rows are relayed by the scheduler process
        return run.id


def leased_rows(run_id: int) -> int:
    db.session.rollback()
    return db.session.scalar(
        sa.select(sa.func.count()).where(EnrichmentRunRow.run_id == run_id, EnrichmentRunRow.status == "leased")
    )


def run_state(run_id: int) -> EnrichmentRun:
    db.session.rollback()
    return db.session.get(EnrichmentRun, run_id)


@pytest.fixture
def committed_app(app) -> Iterator:
    """An app context whose session commits for real; runs and outbox rows are tidied afterwards."""
    from morket.core.models import OutboxMessage

    with app.app_context():
        yield app
        db.session.rollback()
        # Leave nothing active behind for other tests' reconcilers.
        db.session.execute(
            sa.update(EnrichmentRun)
            .where(EnrichmentRun.status.in_(("queued", "running", "paused")))
            .values(status="cancelled")
        )
        db.session.execute(sa.delete(OutboxMessage))
        db.session.commit()
        # Nothing this module committed outlives it: later tests (an admin's user list) count rows.
        while Committed.made:
            Committed.made.pop().remove()


def process_env(app: Flask, redis_url: str, sandbox: SandboxServer) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        MORKET_ENV="development",
        MORKET_DATABASE_URL=app.config["SQLALCHEMY_DATABASE_URI"],
        MORKET_REDIS_URL=redis_url,
        MORKET_LOG_LEVEL="WARNING",
        MORKET_HUNTER_URL=sandbox.url("hunter"),
        MORKET_HUNTER_API_KEY="sandbox-hunter-key",
        MORKET_PROVIDER_RATES="hunter=2000",
        MORKET_ENRICHMENT_LEASE_SECONDS="5",
        MORKET_ENRICHMENT_JOBS_PER_RUN="2",
        PYTHONPATH=str(ROOT),
    )
    return env


class Processes:
    """Worker and scheduler processes, each in its own session so a kill takes its work horse too."""

    def __init__(self, env: dict[str, str]) -> None:
        self.env = env
        self.procs: list[subprocess.Popen] = []
        self.workers: list[subprocess.Popen] = []

    def worker(self) -> subprocess.Popen:
        proc = self._spawn([sys.executable, "-m", "workers", "enrichment"])
        self.workers.append(proc)
        return proc

    def revive_workers(self) -> int:
        """Start a new worker for each one that exited (what a process manager does)."""
        dead = [proc for proc in self.workers if proc.poll() is not None]
        for proc in dead:
            self.workers.remove(proc)
            self.worker()
        return len(dead)

    def scheduler(self) -> subprocess.Popen:
        return self._spawn([sys.executable, "-m", "workers.scheduler"])

    def _spawn(self, argv: list[str]) -> subprocess.Popen:
        proc = subprocess.Popen(  # our own entry points
            argv, env=self.env, cwd=ROOT, start_new_session=True, stdout=subprocess.DEVNULL
        )
        self.procs.append(proc)
        return proc

    @staticmethod
    def kill(proc: subprocess.Popen, sig: int = signal.SIGKILL) -> None:
        kill_tree(proc, sig)  # the work horse too: it runs in a session of its own

    def stop_all(self) -> None:
        for proc in self.procs:
            try:
                kill_tree(proc, signal.SIGTERM, timeout=20)
            except subprocess.TimeoutExpired:
                kill_tree(proc, signal.SIGKILL)


def assert_run_settled(run_id: int, workspace_id: int, sandbox: SandboxServer) -> None:
    """Every row final; credits charged == the price once per delivered value; no idempotency key twice."""
    from morket.credits.models import LedgerEntry

    db.session.rollback()
    run = db.session.get(EnrichmentRun, run_id)
    assert run.status == "completed", service.run_progress(run)
    rows = db.session.execute(
        sa.select(EnrichmentRunRow.status, EnrichmentRunRow.state, sa.func.count())
        .where(EnrichmentRunRow.run_id == run_id)
        .group_by(EnrichmentRunRow.status, EnrichmentRunRow.state)
    ).all()
    assert {(status, state) for status, state, _ in rows} <= {("done", "success"), ("done", "no_data")}, rows
    assert sum(n for *_, n in rows) == run.total == run.done
    # What the provider calls cost (the attempt log's analytics): one finder hit per delivered value here.
    provider_cost = db.session.scalar(
        sa.select(sa.func.coalesce(sa.func.sum(EnrichmentAttempt.cost), 0)).where(EnrichmentAttempt.run_id == run_id)
    )
    hits = db.session.scalar(
        sa.select(sa.func.count()).where(
            EnrichmentAttempt.run_id == run_id, EnrichmentAttempt.outcome == "hit", EnrichmentAttempt.cached.is_(False)
        )
    )
    entries = db.session.execute(
        sa.select(LedgerEntry.idempotency_key, LedgerEntry.amount, LedgerEntry.attempt_id).where(
            LedgerEntry.workspace_id == workspace_id, LedgerEntry.run_id == run_id
        )
    ).all()
    keys = [e.idempotency_key for e in entries]
    assert len(keys) == len(set(keys)), "an idempotency key was used twice"
    succeeded = sum(n for status, state, n in rows if state == "success")
    assert -sum(e.amount for e in entries) == run.credits_used == 2 * succeeded == provider_cost
    # One hit per successful row, each charged once and linked to its attempt.
    assert hits == succeeded == run.succeeded == len(entries)
    hit_attempts = sa.select(EnrichmentAttempt.id).where(
        EnrichmentAttempt.run_id == run_id, EnrichmentAttempt.outcome == "hit"
    )
    attempt_ids = set(db.session.scalars(hit_attempts))
    assert {e.attempt_id for e in entries} == attempt_ids


def test_sigkill_mid_run_loses_no_row_and_charges_no_credit_twice(committed_app, sandbox):
    sandbox.reset()
    sandbox.configure("hunter", latency_ms=15, rate=5000, burst=5000)
    setup = Committed(5000)
    procs = Processes(process_env(committed_app, committed_app.config["REDIS_URL"], sandbox))
    try:
        victim = procs.worker()
        procs.worker()
        procs.scheduler()
        run_id = setup.start()
        assert wait_until(lambda: run_state(run_id).done >= 1200, timeout=180, interval=0.25), (
            "the run did not get going"
        )
        leased = leased_rows(run_id)
        procs.kill(victim)
        assert leased > 0
        assert wait_until(lambda: run_state(run_id).finished, timeout=300, interval=0.25), service.run_progress(
            run_state(run_id)
        )
    finally:
        procs.stop_all()
    assert_run_settled(run_id, setup.workspace.id, sandbox)
    # The killed worker's calls that never committed were asked again: the sandbox saw more calls
    # than the attempts on record, and still nobody paid twice (checked above).
    calls = len([e for e in sandbox.log("hunter") if e["operation"] == "email_finder"])
    recorded = db.session.scalar(
        sa.select(sa.func.count()).where(EnrichmentAttempt.run_id == run_id, EnrichmentAttempt.cached.is_(False))
    )
    assert calls >= recorded == 5000


def test_redis_outage_pauses_the_run_and_it_completes_after_redis_returns(committed_app, sandbox, tmp_path):
    from morket.devservices import EmbeddedRedis

    sandbox.reset()
    sandbox.configure("hunter", latency_ms=15, rate=5000, burst=5000)
    redis_server = EmbeddedRedis(tmp_path / "valkey").start()
    setup = Committed(2000)
    procs = Processes(process_env(committed_app, redis_server.url, sandbox))
    try:
        procs.worker()
        procs.worker()
        procs.scheduler()
        run_id = setup.start()
        assert wait_until(lambda: run_state(run_id).done >= 300, timeout=120, interval=0.25), (
            "the run did not get going"
        )
        redis_server.stop()
        stopped = time.monotonic()
        assert wait_until(lambda: run_state(run_id).status == "paused", timeout=60, interval=0.25), (
            service.run_progress(run_state(run_id))
        )
        assert run_state(run_id).pause_reason
        # Batches in flight finish and give their rows back; then nothing moves until Redis returns.
        assert wait_until(lambda: leased_rows(run_id) == 0, timeout=30, interval=0.25)
        paused_at = run_state(run_id).done
        assert paused_at < 2000
        time.sleep(max(0.0, 30 - (time.monotonic() - stopped)))
        assert run_state(run_id).done == paused_at and run_state(run_id).status == "paused"
        redis_server.start()
        # RQ worker processes exit when Redis vanishes under a running job; like the process
        # manager in production, restart the ones that did.
        procs.revive_workers()
        assert wait_until(lambda: run_state(run_id).finished, timeout=240, interval=0.25), service.run_progress(
            run_state(run_id)
        )
    finally:
        procs.stop_all()
        redis_server.stop()
    assert_run_settled(run_id, setup.workspace.id, sandbox)
