"""AI runs under failure, with real worker and scheduler processes and committed data (the enrichment
reliability harness): a worker killed with SIGKILL mid-run loses no row and charges nobody twice."""

from __future__ import annotations

import uuid

import sqlalchemy as sa

from morket.ai import column_runs
from morket.credits.models import LedgerEntry
from morket.extensions import db
from morket.runs.models import Run, RunRow
from tests.ai.column_support import INDUSTRIES, companies_table, industry_column
from tests.enrichment.test_engine_support import grant
from tests.enrichment.test_reliability import Processes, committed_app, process_env  # noqa: F401 - fixture
from tests.support.waiting import wait_until

ROWS = 400  # enough that the kill lands mid-run with rows leased to the victim


class CommittedCompanies:
    def __init__(self) -> None:
        from morket.accounts.models import User
        from morket.workspaces.models import Membership, Workspace

        tag = uuid.uuid4().hex[:10]
        self.user = User(email=f"ai-rel-{tag}@example.com", name="AI reliability", password_hash="not-a-hash")
        self.workspace = Workspace(slug=f"ai-rel-{tag}", name=f"AI reliability {tag}")
        db.session.add_all([self.user, self.workspace])
        db.session.flush()
        db.session.add(Membership(workspace_id=self.workspace.id, user_id=self.user.id, role="owner"))
        grant(self.workspace, 1_000_000)
        self.table = companies_table(self.workspace, self.user, ROWS)
        self.column = industry_column(self.workspace, self.user, self.table)
        db.session.commit()

    def remove(self) -> None:
        from morket.accounts.models import User
        from morket.tables import service as tables
        from morket.workspaces.models import Workspace

        db.session.rollback()
        tables.delete_table(db.session.get(Workspace, self.workspace.id), None, self.table)
        db.session.execute(sa.delete(Workspace).where(Workspace.id == self.workspace.id))
        db.session.execute(sa.delete(User).where(User.id == self.user.id))
        db.session.commit()


def _run(run_id: int) -> Run:
    db.session.rollback()
    return db.session.get(Run, run_id)


def test_sigkill_mid_ai_run_loses_no_row_and_charges_no_answer_twice(committed_app, sandbox_server, monkeypatch):  # noqa: F811
    server = sandbox_server
    settings = committed_app.config["MORKET"]
    ai = {"AI_KIND": "openai", "AI_BASE_URL": server.url("openai") + "/v1", "AI_API_KEY": "sandbox-platform-key",
          "AI_MODEL": "sandbox-small"}  # fmt: skip
    for name, value in ai.items():
        monkeypatch.setitem(settings, name, value)
    server.reset()
    server.configure("openai", latency_ms=15)
    setup = CommittedCompanies()
    env = process_env(committed_app, committed_app.config["REDIS_URL"], server)
    env.update({f"MORKET_{k}": v for k, v in ai.items()})
    procs = Processes(env)
    try:
        victim = procs.worker()
        procs.worker()
        procs.scheduler()
        run = column_runs.start_run(setup.workspace, setup.user, setup.table, setup.column)
        db.session.commit()
        run_id = run.id
        assert wait_until(lambda: _run(run_id).done >= 80, timeout=180, interval=0.25), "the run did not get going"
        leased = db.session.scalar(sa.select(sa.func.count()).where(RunRow.run_id == run_id, RunRow.status == "leased"))
        procs.kill(victim)
        assert leased > 0
        assert wait_until(lambda: _run(run_id).finished, timeout=300, interval=0.25), column_runs.progress(_run(run_id))
    finally:
        procs.stop_all()
    try:
        run = _run(run_id)
        assert (run.status, run.succeeded, run.failed) == ("completed", ROWS, 0)
        store_values = column_runs_cells(setup)
        assert len(store_values) == ROWS and set(store_values) <= set(INDUSTRIES)
        entries = db.session.execute(
            sa.select(LedgerEntry.idempotency_key, LedgerEntry.amount).where(LedgerEntry.run_id == run_id)
        ).all()
        keys = [e.idempotency_key for e in entries]
        assert len(keys) == len(set(keys)) == ROWS  # one charge per answered row, none twice
        assert -sum(e.amount for e in entries) == run.credits_used
        # The killed worker's calls that never committed were asked again: the sandbox answered at least one a row.
        answered = [e for e in server.log("openai") if e["status"] == 200]
        assert len(answered) >= ROWS
    finally:
        setup.remove()


def column_runs_cells(setup: CommittedCompanies) -> list:
    from morket.tables import storage

    store = storage.storage_for(setup.table)
    return list(db.session.scalars(sa.select(store.columns[setup.column.id])))
