"""Batched charges: the same books as a loop of single charges, in one statement per batch.

charge_many must keep every invariant of charge (append-only ledger, idempotency, a balance that
never goes below zero, balance_after as the running sum in id order, debits that name their run,
row, column and attempt), and when the balance covers only part of a batch it must charge what it
covers, in order, and then refuse, like the loop it replaces.
"""

from __future__ import annotations

import multiprocessing
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from morket.core.errors import ValidationFailed
from morket.credits import service
from morket.credits.models import LedgerEntry
from morket.credits.service import Charge, InsufficientCredits
from tests.credits.test_concurrency import _BalanceWatcher, _ledger, committed_workspace  # noqa: F401 - fixture
from tests.factories import WorkspaceFactory


def _entries(workspace_id: int) -> list[LedgerEntry]:
    from morket.extensions import db

    return list(db.session.scalars(select(LedgerEntry).where(LedgerEntry.workspace_id == workspace_id).order_by("id")))


def _assert_books(workspace_id: int) -> None:
    running = 0
    for entry in _entries(workspace_id):
        running += entry.amount
        assert entry.balance_after == running >= 0, "balance_after is the running sum in id order"
    assert service.balance(workspace_id) == running


def test_a_batch_debits_each_hit_and_points_at_what_caused_it(db, fund):
    workspace = WorkspaceFactory()
    fund(workspace, 10)
    found = service.charge_many(
        workspace.id,
        [
            Charge(2, "b:1", run_id=7, row_id=1, column_id=3, attempt_id=11, provider="hunter", operation="hunter.x"),
            Charge(0, "b:2", run_id=7, row_id=2, column_id=3, attempt_id=12, provider="hunter", key_source="own"),
            Charge(3, "b:3", run_id=7, row_id=3, column_id=3, attempt_id=13, provider="apollo", operation="apollo.y"),
        ],
    )
    assert [e.kind for e in found] == ["debit", "usage", "debit"]
    assert [e.amount for e in found] == [-2, 0, -3]
    assert [e.balance_after for e in found] == [8, 8, 5]
    assert found[0].id < found[1].id < found[2].id
    assert (found[2].run_id, found[2].row_id, found[2].column_id, found[2].attempt_id) == (7, 3, 3, 13)
    assert (found[2].provider, found[2].operation, found[2].key_source) == ("apollo", "apollo.y", "platform")
    assert found[1].key_source == "own"
    assert service.balance(workspace.id) == 5
    _assert_books(workspace.id)


def test_replays_within_and_across_batches_charge_once(db, fund):
    workspace = WorkspaceFactory()
    fund(workspace, 20)
    first = service.charge_many(workspace.id, [Charge(2, "r:1"), Charge(2, "r:2"), Charge(5, "r:1")])
    assert first[0] is not None and first[1] is not None
    assert first[2] is None, "the same key later in the batch is a replay"
    assert service.balance(workspace.id) == 16

    second = service.charge_many(workspace.id, [Charge(2, "r:2"), Charge(3, "r:3"), Charge(2, "r:1")])
    assert second[0] is None and second[2] is None
    assert second[1] is not None and second[1].balance_after == 13
    assert service.balance(workspace.id) == 13
    assert service.charge_many(workspace.id, [Charge(2, "r:1"), Charge(3, "r:3")]) == [None, None]
    assert service.balance(workspace.id) == 13
    assert sorted(e.idempotency_key for e in _entries(workspace.id) if e.kind == "debit") == ["r:1", "r:2", "r:3"]
    _assert_books(workspace.id)


def test_a_replay_answers_already_charged_even_when_the_balance_is_short(db, fund):
    workspace = WorkspaceFactory()
    fund(workspace, 4)
    service.charge_many(workspace.id, [Charge(4, "s:1")])
    assert service.balance(workspace.id) == 0
    assert service.charge_many(workspace.id, [Charge(4, "s:1")]) == [None]


def test_partial_coverage_charges_in_order_then_refuses(db, fund):
    workspace = WorkspaceFactory()
    fund(workspace, 5)
    with pytest.raises(InsufficientCredits) as refused:
        service.charge_many(workspace.id, [Charge(2, "p:1"), Charge(2, "p:2"), Charge(2, "p:3"), Charge(1, "p:4")])
    assert refused.value.balance == 1 and refused.value.needed == 2
    # What the balance covered went through in the caller's transaction; the caller decides.
    assert [e.idempotency_key for e in _entries(workspace.id) if e.kind == "debit"] == ["p:1", "p:2"]
    assert service.balance(workspace.id) == 1
    _assert_books(workspace.id)


def test_a_workspace_without_credits_is_refused_but_free_uses_are_recorded(db):
    workspace = WorkspaceFactory()
    found = service.charge_many(workspace.id, [Charge(0, "f:1", key_source="own"), Charge(2, "f:2", key_source="own")])
    assert [(e.kind, e.amount, e.balance_after) for e in found] == [("usage", 0, 0), ("usage", 0, 0)]
    with pytest.raises(InsufficientCredits):
        service.charge_many(workspace.id, [Charge(1, "f:3")])
    assert len(_entries(workspace.id)) == 2


def test_a_charge_of_zero_credits_is_refused_unless_it_records_an_own_key_use(db):
    """The only entries of 0 in the ledger are own-key uses: a free platform charge writes nothing."""
    workspace = WorkspaceFactory()
    for source in ("platform", "none"):
        with pytest.raises(ValidationFailed):
            service.charge_many(workspace.id, [Charge(0, f"z:{source}", key_source=source)])
        with pytest.raises(ValidationFailed):
            service.charge(workspace.id, 0, idempotency_key=f"z1:{source}", key_source=source)
    assert _entries(workspace.id) == []


@pytest.mark.parametrize(
    "bad",
    [Charge(-1, "x:2"), Charge(1, ""), Charge(1, "x" * 201), Charge(1, "x:2", key_source="stolen"), Charge(True, "x")],
)
def test_bad_input_writes_nothing(db, fund, bad):
    workspace = WorkspaceFactory()
    fund(workspace, 10)
    before = _entries(workspace.id)
    with pytest.raises(ValidationFailed):
        service.charge_many(workspace.id, [Charge(1, "x:1"), bad])
    assert _entries(workspace.id) == before
    assert service.balance(workspace.id) == 10


def test_an_empty_batch_is_nothing(db):
    assert service.charge_many(WorkspaceFactory().id, []) == []


# --- the same books as a loop of single charges -------------------------------------------------

_charge = st.builds(
    lambda amount, key, own: Charge(amount, f"k{key}", row_id=key, key_source="own" if own else "platform"),
    st.integers(1, 5),
    st.integers(0, 9),
    st.booleans(),
)


def _single(workspace_id: int, batch: list[Charge]) -> list[LedgerEntry | None]:
    found = []
    for item in batch:
        found.append(
            service.charge(
                workspace_id, item.amount, idempotency_key=item.idempotency_key, row_id=item.row_id,
                key_source=item.key_source,
            )
        )  # fmt: skip
    return found


def _shape(entries: list[LedgerEntry | None]) -> list[tuple | None]:
    return [None if e is None else (e.kind, e.amount, e.balance_after, e.idempotency_key, e.row_id) for e in entries]


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow]
)
@given(start=st.integers(0, 25), batches=st.lists(st.lists(_charge, max_size=8), max_size=5))
def test_charge_many_keeps_the_books_of_single_charges(db, start, batches):
    batched, single = WorkspaceFactory(), WorkspaceFactory()
    if start:
        service.grant(batched.id, start, idempotency_key="start")
        service.grant(single.id, start, idempotency_key="start")
    for batch in batches:
        outcome: dict[int, Any] = {}
        for workspace_id, charge in ((batched.id, service.charge_many), (single.id, _single)):
            try:
                outcome[workspace_id] = ("ok", _shape(charge(workspace_id, batch)))
            except InsufficientCredits as exc:
                outcome[workspace_id] = ("short", exc.balance, exc.needed)
        assert outcome[batched.id] == outcome[single.id]
        assert service.balance(batched.id) == service.balance(single.id)
        assert _shape(_entries(batched.id)) == _shape(_entries(single.id))
    _assert_books(batched.id)


# --- several processes at once --------------------------------------------------------------------


def charge_batches(url: str, workspace_id: int, worker: int, batches: list[list[str]], barrier: Any, results: Any):
    """Child process: charge 1 credit per key, one transaction per batch; report each batch's outcome."""
    from flask import Flask
    from sqlalchemy import text

    import morket.accounts.models
    import morket.workspaces.models  # noqa: F401 - the ledger's foreign keys name these tables
    from morket.extensions import db

    outcomes: list[tuple[list[str], str, list[int | None]]] = []
    try:
        app = Flask(f"batch-charger-{worker}")
        app.config.update(SQLALCHEMY_DATABASE_URI=url)
        db.init_app(app)
        with app.app_context():
            db.session.scalar(text("SELECT 1"))
            db.session.commit()
            barrier.wait(timeout=300)
            for keys in batches:
                try:
                    found = service.charge_many(workspace_id, [Charge(1, key, row_id=worker) for key in keys])
                    db.session.commit()
                    outcomes.append((keys, "ok", [None if e is None else e.id for e in found]))
                except InsufficientCredits:
                    db.session.rollback()
                    outcomes.append((keys, "refused", []))
            db.engine.dispose()
    except Exception as exc:  # noqa: BLE001 - reported to the test, which fails on it
        outcomes.append(([], f"error: {type(exc).__name__}: {exc}", []))
        barrier.abort()
    results.put((worker, outcomes))


def _run_batch_chargers(database_url: str, workspace_id: int, batches_for: list[list[list[str]]]):
    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload(["tests.credits.test_charge_many"])
    barrier = ctx.Barrier(len(batches_for))
    results = ctx.Queue()
    procs = [
        ctx.Process(target=charge_batches, args=(database_url, workspace_id, i, batches, barrier, results))
        for i, batches in enumerate(batches_for)
    ]
    for proc in procs:
        proc.start()
    collected = [results.get(timeout=300) for _ in procs]
    for proc in procs:
        proc.join(60)
        assert proc.exitcode == 0
    return [outcome for _, found in collected for outcome in found]


def test_processes_charging_batches_spend_exactly_the_balance(app, database_url, committed_workspace):  # noqa: F811
    """Eight processes, four batches of four each (128 credits asked, 100 held): never below zero."""
    workspace_id = committed_workspace
    batches_for = [[[f"w{w}:b{b}:{n}" for n in range(4)] for b in range(4)] for w in range(8)]
    watcher = _BalanceWatcher(database_url, workspace_id)
    watcher.start()
    try:
        outcomes = _run_batch_chargers(database_url, workspace_id, batches_for)
    finally:
        watcher.stop.set()
        watcher.join(30)
    assert not [o for o in outcomes if o[1].startswith("error")]
    charged = [key for keys, result, _ in outcomes if result == "ok" for key in keys]
    # Whole batches of 4 go through while the balance covers them: 25 of the 32 batches.
    assert len(charged) == 100
    assert sum(1 for _, result, _ in outcomes if result == "refused") == 7

    rows, current = _ledger(database_url, workspace_id)
    assert current == 0
    assert sorted(r.idempotency_key for r in rows if r.kind == "debit") == sorted(charged)
    running = 0
    for row in rows:
        running += row.amount
        assert row.balance_after == running >= 0
    assert watcher.seen and min(watcher.seen) >= 0


def test_processes_replaying_the_same_batches_charge_each_key_once(app, database_url, committed_workspace):  # noqa: F811
    """Six processes send the same three batches in different orders, and overlapping: 12 keys charged once."""
    workspace_id = committed_workspace
    batches = [[f"s:{b}:{n}" for n in range(4)] for b in range(3)]
    # Each process starts with a batch straddling two of them, racing the others' whole batches.
    batches_for = [
        [batches[i % 3][2:] + batches[(i + 1) % 3][:2]] + batches[i % 3 :] + batches[: i % 3] for i in range(6)
    ]
    outcomes = _run_batch_chargers(database_url, workspace_id, batches_for)
    assert not [o for o in outcomes if o[1].startswith("error")]
    assert all(result == "ok" for _, result, _ in outcomes)
    won = sorted(key for keys, _, ids in outcomes for key, found in zip(keys, ids, strict=True) if found is not None)
    assert won == sorted(key for batch in batches for key in batch), "each key charged by exactly one process"
    rows, current = _ledger(database_url, workspace_id)
    assert current == 100 - 12
    assert sorted(r.idempotency_key for r in rows if r.kind == "debit") == won
    running = 0
    for row in rows:
        running += row.amount
        assert row.balance_after == running >= 0
