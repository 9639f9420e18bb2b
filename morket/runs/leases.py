"""Leases and statuses: claim a batch, give rows back, expire what a dead worker held, pause, finish, fail.

Durability rests on PostgreSQL. A worker leases a batch (``UPDATE … FOR UPDATE SKIP LOCKED``) and
commits the lease before it calls anyone. A worker killed before its batch is written leaves its
rows leased; the reconciler hands them out again once the lease has expired. Times are
``clock_timestamp()``, not ``now()``: ``now()`` is the start of the transaction, and a caller that
holds one open for long would never see a retry come due.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql as pg

from morket.extensions import db
from morket.runs.executor import ClaimedRow
from morket.runs.models import ACTIVE_RUN_STATUSES, OPEN_ROW_STATUSES, Run, RunRow
from morket.tables import live, storage
from morket.tables.models import Table

PAUSE_REDIS = "Paused: the job queue (Redis) cannot be reached. The run resumes when it is back."
PAUSE_CREDITS = "Paused: the workspace is out of credits. The run resumes when credits are added."
CALLBACK_TIMEOUT_SECONDS = 600
# Listeners told, in the same transaction, that a run finished: (run id, final status). The
# outbound webhooks register one; the engine imports nothing of them.
_FINISHED: dict[str, Callable[[int, str], object]] = {}


def on_run_finished(name: str, listener: Callable[[int, str], object]) -> None:
    """Call ``listener(run_id, status)`` when a run completes or fails, before the change commits."""
    _FINISHED[name] = listener


def _finished(run_id: int, status: str) -> None:
    for listener in _FINISHED.values():
        listener(run_id, status)


def announce_finished(run_id: int, status: str) -> None:
    """Tell the listeners that a run ended outside the engine (a cancel), in the caller's transaction."""
    _finished(run_id, status)


# Listeners told, in the same transaction, which cells of a run reached a final state: (table, run
# id, items of {row_id, column_id, state, provider}). Only states, never values or payloads.
_CELLS: dict[str, Callable[[Table, int, list[dict[str, Any]]], object]] = {}


def on_cells_written(name: str, listener: Callable[[Table, int, list[dict[str, Any]]], object]) -> None:
    """Call ``listener(table, run_id, items)`` when a batch's cells end final, before the change commits."""
    _CELLS[name] = listener


def cells_written(table: Table, run_id: int, items: list[dict[str, Any]]) -> None:
    """Announce cells of ``run_id`` that reached a final state (the engine's writes call this)."""
    if not items:
        return
    # Open grids of the table fetch the new values once the batch commits.
    live.announce(table.id, "cells", sorted({int(item["row_id"]) for item in items}))
    for listener in _CELLS.values():
        listener(table, run_id, items)


def claim_rows(run_id: int, owner: str, limit: int, lease_seconds: int) -> list[ClaimedRow]:
    """Lease up to ``limit`` due pending rows of the run, in row order."""
    rr = RunRow.__table__
    due = (
        sa.select(rr.c.run_id, rr.c.row_id)
        .where(rr.c.run_id == run_id, rr.c.status == "pending", rr.c.next_attempt_at <= sa.func.clock_timestamp())
        .order_by(rr.c.next_attempt_at, rr.c.row_id)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    stmt = (
        sa.update(rr)
        .where(sa.tuple_(rr.c.run_id, rr.c.row_id).in_(due))
        .values(
            status="leased",
            lease_owner=owner,
            lease_expires_at=sa.func.clock_timestamp() + sa.text(f"interval '{int(lease_seconds)} seconds'"),
        )
        .returning(rr.c.row_id, rr.c.step_index, rr.c.attempts, rr.c.message, rr.c.result)
    )
    return sorted((ClaimedRow(*r) for r in db.session.execute(stmt)), key=lambda c: c.row_id)


def reserve_callbacks(run_id: int, row_ids: Sequence[int]) -> dict[int, str]:
    """Give each leased row an id its asynchronous answer will carry, committed with the lease.

    An answer can then arrive before the batch that made the call is written (a fast scrape, a
    quick webhook) and still find its row (``callbacks.complete_callback``).
    """
    if not row_ids:
        return {}
    rr = RunRow.__table__
    return dict(
        db.session.execute(
            sa.update(rr)
            .where(
                rr.c.run_id == run_id,
                rr.c.row_id == sa.func.any(sa.cast(sa.literal(list(row_ids)), pg.ARRAY(sa.BigInteger))),
                rr.c.status == "leased",
            )
            .values(callback_id=sa.func.replace(sa.cast(sa.func.gen_random_uuid(), sa.Text), "-", ""))
            .returning(rr.c.row_id, rr.c.callback_id)
        ).all()
    )


def state_patch(
    column_id: int, status: str, run_id: int, provider: str | None = None, message: str | None = None
) -> dict[str, Any]:
    """The cell-state entry of ``column_id`` as the grid reads it."""
    state: dict[str, Any] = {"status": status, "run_id": run_id}
    if provider:
        state["provider"] = provider
    if message:
        state["message"] = message[:500]
    return {str(column_id): state}


def mark_cells(
    table: Table, column_id: int, run_id: int, row_ids: Sequence[int], status: str, *, message: str | None = None
) -> None:
    """Set the cell state of ``row_ids`` (queued, running, error …) in one statement."""
    if not row_ids:
        return
    rows = storage.storage_for(table).rows
    patch = json.dumps(state_patch(column_id, status, run_id, message=message))
    db.session.execute(
        sa.update(rows)
        .where(rows.c.id == sa.func.any(sa.cast(sa.literal(list(row_ids)), pg.ARRAY(sa.BigInteger))))
        .values(
            cell_state=sa.func.coalesce(rows.c.cell_state, sa.cast(sa.literal("{}"), pg.JSONB)).op("||")(
                sa.cast(sa.literal(patch), pg.JSONB)
            )
        )
    )


def cancel_open_rows(run: Run) -> int:
    """Cancel a run: its open rows (and their cells) end cancelled, the run is finished, listeners are told.

    A row being called right now is dropped (its result no longer lands). Everything happens in
    the caller's transaction; returns how many rows were cancelled.
    """
    rr = RunRow.__table__
    cancelled = list(
        db.session.scalars(
            sa.update(rr)
            .where(rr.c.run_id == run.id, rr.c.status.in_(OPEN_ROW_STATUSES))
            .values(status="cancelled", state="cancelled", lease_owner=None, lease_expires_at=None, callback_id=None)
            .returning(rr.c.row_id)
        )
    )
    table = db.session.get(Table, run.table_id)
    if table is not None and cancelled:
        mark_cells(table, run.column_id, run.id, cancelled, "cancelled")
    runs = Run.__table__
    db.session.execute(
        sa.update(runs)
        .where(runs.c.id == run.id)
        .values(
            status="cancelled",
            cancelled=runs.c.cancelled + len(cancelled),
            done=runs.c.done + len(cancelled),
            pause_reason=None,
            finished_at=sa.func.clock_timestamp(),
            updated_at=sa.func.clock_timestamp(),
        )
    )
    _finished(run.id, "cancelled")  # run.finished for webhooks, in this transaction
    return len(cancelled)


def release_leases(run_id: int, owner: str) -> int:
    """Give this worker's leased rows of the run back (pending, due now)."""
    rr = RunRow.__table__
    result = db.session.execute(
        sa.update(rr)
        .where(rr.c.run_id == run_id, rr.c.status == "leased", rr.c.lease_owner == owner)
        .values(status="pending", lease_owner=None, lease_expires_at=None, next_attempt_at=sa.func.clock_timestamp())
    )
    return result.rowcount or 0


def expire_leases() -> list[int]:
    """Put rows whose lease ran out back to pending; return each such row's run id.

    A row keeps an asynchronous answer that arrived while it was leased: it is continued from it.
    """
    rr = RunRow.__table__
    result = db.session.execute(
        sa.update(rr)
        .where(rr.c.status == "leased", rr.c.lease_expires_at < sa.func.clock_timestamp())
        .values(
            status="pending",
            lease_owner=None,
            lease_expires_at=None,
            callback_id=None,
            next_attempt_at=sa.func.clock_timestamp(),
        )
        .returning(rr.c.run_id)
    )
    return [r[0] for r in result]


def expire_callbacks() -> list[int]:
    """Rows whose asynchronous answer never came move on to the next step; return their run ids."""
    rr = RunRow.__table__
    result = db.session.execute(
        sa.update(rr)
        .where(rr.c.status == "awaiting_callback", rr.c.lease_expires_at < sa.func.clock_timestamp())
        .values(
            status="pending",
            step_index=rr.c.step_index + 1,
            attempts=0,
            callback_id=None,
            lease_expires_at=None,
            next_attempt_at=sa.func.clock_timestamp(),
            message="The provider's callback did not arrive in time.",
        )
        .returning(rr.c.run_id)
    )
    return [r[0] for r in result]


def pause_run(run_id: int, reason: str) -> bool:
    """Pause a running run (its leases are released by the caller); False when it was not running."""
    runs = Run.__table__
    result = db.session.execute(
        sa.update(runs)
        .where(runs.c.id == run_id, runs.c.status.in_(ACTIVE_RUN_STATUSES))
        .values(status="paused", pause_reason=reason, updated_at=sa.func.clock_timestamp())
    )
    return bool(result.rowcount)


def finish_if_done(run_id: int) -> bool:
    """Complete the run when no row is open any more; True when this call completed it."""
    runs = Run.__table__
    rr = RunRow.__table__
    open_rows = sa.exists().where(rr.c.run_id == run_id, rr.c.status.in_(OPEN_ROW_STATUSES))
    result = db.session.execute(
        sa.update(runs)
        .where(runs.c.id == run_id, runs.c.status.in_((*ACTIVE_RUN_STATUSES, "paused")), ~open_rows)
        .values(
            status="completed",
            pause_reason=None,
            finished_at=sa.func.clock_timestamp(),
            updated_at=sa.func.clock_timestamp(),
        )
    )
    if result.rowcount:
        _finished(run_id, "completed")
    return bool(result.rowcount)


def fail_run(run: Run | None, message: str, table: Table | None) -> None:
    """End a run that cannot go on: every open row, and its cell, ends as an error with the reason.

    Nothing of such a run was delivered, so nothing is charged. Without ``table`` (it was
    deleted) there are no cells left to mark.
    """
    if run is None:
        return
    runs = Run.__table__
    rr = RunRow.__table__
    reason = message[:1000]
    ended = list(
        db.session.scalars(
            sa.update(rr)
            .where(rr.c.run_id == run.id, rr.c.status.in_(OPEN_ROW_STATUSES))
            .values(
                status="done",
                state="error",
                message=reason,
                lease_owner=None,
                lease_expires_at=None,
                callback_id=None,
                result=None,
            )
            .returning(rr.c.row_id)
        )
    )
    failed_now = db.session.execute(
        sa.update(runs)
        .where(runs.c.id == run.id, runs.c.status.in_((*ACTIVE_RUN_STATUSES, "paused")))
        .values(
            status="failed",
            pause_reason=reason,
            done=runs.c.done + len(ended),
            failed=runs.c.failed + len(ended),
            finished_at=sa.func.clock_timestamp(),
            updated_at=sa.func.clock_timestamp(),
        )
    )
    if table is not None and ended:
        mark_cells(table, run.column_id, run.id, ended, "error", message=reason)
        cells_written(
            table,
            run.id,
            [{"row_id": r, "column_id": run.column_id, "state": "error", "provider": None} for r in sorted(ended)],
        )
    if failed_now.rowcount:
        _finished(run.id, "failed")
