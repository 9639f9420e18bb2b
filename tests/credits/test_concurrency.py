"""Many processes charging one workspace at once: exactly the balance is spent, never more.

Each charger is a separate process with its own database connection (see charger.py); they all
start charging together behind a barrier. The tests assert outcomes (how many charges went
through, the balance, the ledger) and never timings.
"""

from __future__ import annotations

import multiprocessing
import threading

import pytest
from sqlalchemy import create_engine, text

from morket.credits import service
from morket.extensions import db as _db
from morket.workspaces.models import Workspace

PROCESSES = 50


@pytest.fixture
def committed_workspace(app):
    """A committed workspace holding 100 credits (visible to other connections); deleted afterwards."""
    with app.app_context():
        workspace = Workspace(name="Concurrency Co", slug="concurrency-co")
        _db.session.add(workspace)
        _db.session.flush()
        service.grant(workspace.id, 100, idempotency_key="seed", note="100 credits to spend")
        _db.session.commit()
        workspace_id = workspace.id
    yield workspace_id
    with app.app_context():
        # Deleting the workspace is the one way its ledger rows may go (the append-only trigger allows it).
        _db.session.execute(text("DELETE FROM workspaces WHERE id = :w"), {"w": workspace_id})
        _db.session.commit()


def _run_chargers(database_url: str, workspace_id: int, keys_for: list[list[str]]):
    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload(["tests.credits.charger"])
    from tests.credits.charger import charge_keys

    barrier = ctx.Barrier(len(keys_for))
    results = ctx.Queue()
    procs = [
        ctx.Process(target=charge_keys, args=(database_url, workspace_id, i, keys, barrier, results))
        for i, keys in enumerate(keys_for)
    ]
    for proc in procs:
        proc.start()
    collected = [results.get(timeout=300) for _ in procs]
    for proc in procs:
        proc.join(60)
        assert proc.exitcode == 0
    return collected


class _BalanceWatcher(threading.Thread):
    """Read the balance over and over on its own connection while the chargers run."""

    def __init__(self, database_url: str, workspace_id: int) -> None:
        super().__init__(daemon=True)
        self.engine = create_engine(database_url)
        self.workspace_id = workspace_id
        self.seen: list[int] = []
        self.stop = threading.Event()

    def run(self) -> None:
        with self.engine.connect() as conn:
            while not self.stop.is_set():
                found = conn.execute(
                    text("SELECT balance FROM credit_balances WHERE workspace_id = :w"), {"w": self.workspace_id}
                ).scalar()
                self.seen.append(int(found))
                conn.rollback()
                self.stop.wait(0.005)
        self.engine.dispose()


def _ledger(database_url: str, workspace_id: int) -> list[tuple]:
    engine = create_engine(database_url)
    with engine.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT id, kind, amount, balance_after, idempotency_key FROM credit_ledger "
                "WHERE workspace_id = :w ORDER BY id"
            ),
            {"w": workspace_id},
        ).all()
        current = conn.execute(
            text("SELECT balance FROM credit_balances WHERE workspace_id = :w"), {"w": workspace_id}
        ).scalar()
    engine.dispose()
    return rows, current


def test_fifty_processes_spend_exactly_the_balance(app, database_url, committed_workspace):
    workspace_id = committed_workspace
    keys_for = [[f"hit:{worker}:{n}" for n in range(3)] for worker in range(PROCESSES)]
    watcher = _BalanceWatcher(database_url, workspace_id)
    watcher.start()
    try:
        collected = _run_chargers(database_url, workspace_id, keys_for)
    finally:
        watcher.stop.set()
        watcher.join(30)

    outcomes = [outcome for _, _, found in collected for outcome in found]
    assert not [o for o in outcomes if o[1].startswith("error")]
    backends = {backend for _, backend, _ in collected}
    assert len(backends) == PROCESSES, "every charger used its own connection"
    assert len(outcomes) == 3 * PROCESSES
    charged = [key for key, result, _ in outcomes if result == "charged"]
    refused = [key for key, result, _ in outcomes if result == "refused"]
    assert len(charged) == 100
    assert len(refused) == 3 * PROCESSES - 100

    rows, current = _ledger(database_url, workspace_id)
    assert current == 0
    debits = [row for row in rows if row.kind == "debit"]
    assert sorted(row.idempotency_key for row in debits) == sorted(charged), "the ledger holds exactly the charges"
    assert sum(row.amount for row in rows) == current
    # Changes are serialised by the balance row: in id order, balance_after is the running sum.
    running = 0
    for row in rows:
        running += row.amount
        assert row.balance_after == running >= 0
    assert watcher.seen and min(watcher.seen) >= 0


def test_racing_replays_of_one_key_charge_once(app, database_url, committed_workspace):
    """Ten processes each send the same five charges (a retried job, a duplicate delivery): five go through."""
    workspace_id = committed_workspace
    keys = [f"shared:{n}" for n in range(5)]
    collected = _run_chargers(database_url, workspace_id, [keys[i % 5 :] + keys[: i % 5] for i in range(10)])

    outcomes = [outcome for _, _, found in collected for outcome in found]
    assert not [o for o in outcomes if o[1].startswith("error")]
    charged = sorted(key for key, result, _ in outcomes if result == "charged")
    assert charged == keys
    assert sum(1 for _, result, _ in outcomes if result == "replay") == 45
    rows, current = _ledger(database_url, workspace_id)
    assert current == 95
    assert [row.kind for row in rows].count("debit") == 5
