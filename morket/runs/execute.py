"""The job: lease a batch, hand its rows to the executor in a thread pool, write the batch back.

Rows run in a thread pool inside the job (``ENRICHMENT_CONCURRENCY``) sharing one
``httpx.Client``. The threads never touch the database session: everything a row needs is read
before (``Executor.prepare``), and everything it produced is written after (``write``). Two
batches overlap: the next one's calls run while this one is written.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import threading
import time
import uuid
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import httpx
import sqlalchemy as sa
from redis.exceptions import RedisError

from morket.core.db import utcnow
from morket.core.errors import MorketError
from morket.extensions import db
from morket.runs import jobs, leases
from morket.runs.callbacks import BACKOFF_BASE_SECONDS
from morket.runs.executor import ClaimedRow, Executor, RowOutcome
from morket.runs.limits import CALL_TIMEOUT_SECONDS, LEASE_MARGIN_SECONDS, CallScope
from morket.runs.models import ACTIVE_RUN_STATUSES, Run, RunRow
from morket.runs.write import write_with_retry
from morket.tables.models import Column, Table

log = logging.getLogger("morket.runs")

# A job works this long, then hands its slot to a fresh job (the hard limit is far above).
JOB_BUDGET_SECONDS = 240.0


@dataclass
class _Batch:
    scope: CallScope
    futures: list[Future[RowOutcome]]
    missing: list[int]


def _worker_id(slot: int) -> str:
    return f"{socket.gethostname()[:24]}:{os.getpid()}:{slot}:{uuid.uuid4().hex[:8]}"


def _commit() -> None:
    # Job bodies commit here and only here: each batch (and each lease) is its own transaction.
    db.session.commit()


def _start(executor: Executor, run_id: int) -> tuple[Run, Table, Any] | None:
    """Load the run and plan it; a run whose table, column or settings are gone fails with the reason."""
    run = db.session.get(Run, run_id)
    if run is None or run.status not in ACTIVE_RUN_STATUSES:
        return None
    table = db.session.get(Table, run.table_id)
    column = db.session.get(Column, run.column_id)
    if table is None or column is None or column.deleted_at is not None:
        leases.fail_run(run, "The table or the enrichment column was deleted.", None)
        _commit()
        return None
    try:
        plan = executor.plan(run)
    except Exception as exc:  # a broken configuration or an unreadable key fails the run
        log.exception("run cannot start", extra={"data": {"run_id": run_id}})
        db.session.rollback()
        run = db.session.get(Run, run_id)
        table = db.session.get(Table, run.table_id) if run is not None else None
        reason = exc.message if isinstance(exc, MorketError) else f"The column's settings cannot be used: {exc}"
        leases.fail_run(run, f"The run could not start: {reason}", table)
        _commit()
        return None
    if run.status == "queued":
        run.status = "running"
        run.started_at = run.started_at or utcnow()
    _commit()
    return run, table, plan


def work(
    executor: Executor, run_id: int, slot: int = 0, *, budget: float | None = None
) -> dict[str, Any]:  # the job loop
    """Work on a run until no row is claimable, the budget is spent, or the run pauses or ends."""
    budget = JOB_BUDGET_SECONDS if budget is None else budget
    deadline = time.monotonic() + budget
    stats: dict[str, Any] = {"batches": 0, "rows": 0, "finals": 0, "write_s": 0.0, "charge_s": 0.0, "wait_s": 0.0}
    started = _start(executor, run_id)
    if started is None:
        return stats
    _run, table, plan = started
    # An executor whose rows travel in batch calls (a CRM push) says how many rows a batch holds.
    batch_rows = max(1, int(getattr(plan, "batch_rows", 0) or jobs.setting("ENRICHMENT_BATCH_ROWS", 50)))
    lease = max(5, int(jobs.setting("ENRICHMENT_LEASE_SECONDS", 120)))
    concurrency = max(1, int(jobs.setting("ENRICHMENT_CONCURRENCY", 8)))
    backoff_base = float(jobs.setting("ENRICHMENT_BACKOFF_SECONDS", BACKOFF_BASE_SECONDS))
    min_balance = executor.min_balance(plan)
    owner = _worker_id(slot)
    redis = jobs.redis_client()
    engine = db.engine
    more_left = False
    redis_down = threading.Event()

    def launch(claimed: list[ClaimedRow], pool: ThreadPoolExecutor) -> _Batch:
        """Mark and read a claimed batch, commit, and hand its rows to the pool."""
        lease_deadline = time.monotonic() + lease
        leases.mark_cells(table, plan.column_id, run_id, [c.row_id for c in claimed], "running")
        prepared = executor.prepare(table, plan, claimed)
        _commit()
        scope = CallScope(
            run_id=run_id,
            owner=owner,
            client=client,
            redis=redis,
            engine=engine,
            lease_deadline=lease_deadline,
            lease_margin=min(LEASE_MARGIN_SECONDS, lease / 4),
            config=jobs.settings(),
            redis_down=redis_down,
        )
        row_worker = executor.row_worker(plan, prepared, scope)
        return _Batch(scope, [pool.submit(row_worker, row) for row in prepared.rows], prepared.missing)

    def file(batch: _Batch) -> bool:
        """Write a batch's outcomes once its calls are done; False when the job must stop."""
        waiting_since = time.perf_counter()
        outcomes = [future.result() for future in batch.futures]
        outcomes += [RowOutcome(r, "final", "skipped", message="The row was deleted.") for r in batch.missing]
        writing_since = time.perf_counter()
        summary = write_with_retry(executor, table, plan, outcomes, owner, backoff_base)
        if redis_down.is_set():
            leases.pause_run(run_id, leases.PAUSE_REDIS)
        _commit()
        stats["wait_s"] += writing_since - waiting_since
        stats["write_s"] += time.perf_counter() - writing_since
        stats["charge_s"] += summary.charge_s
        stats["batches"] += 1
        stats["rows"] += summary.written
        stats["finals"] += summary.finals
        return not (redis_down.is_set() or summary.out_of_credits)

    def must_halt() -> bool:
        """The budget is spent, the run is no longer active, Redis is away or the credits are short."""
        nonlocal more_left
        if time.monotonic() >= deadline:
            more_left = True
            return True
        if db.session.scalar(sa.select(Run.status).where(Run.id == run_id)) not in ACTIVE_RUN_STATUSES:
            return True
        try:
            redis.set(jobs.alive_key(run_id, slot), owner, ex=lease + 30)
        except RedisError:
            redis_down.set()
            leases.pause_run(run_id, leases.PAUSE_REDIS)
            return True
        if min_balance > 0:
            from morket.credits.service import balance

            if balance(plan.workspace_id) < max(min_balance, 1):
                leases.pause_run(run_id, leases.PAUSE_CREDITS)
                return True
        return False

    limits = httpx.Limits(max_connections=concurrency * 2, max_keepalive_connections=concurrency * 2)
    with httpx.Client(timeout=CALL_TIMEOUT_SECONDS, limits=limits) as client, ThreadPoolExecutor(concurrency) as pool:
        inflight: _Batch | None = None
        while True:
            halt = must_halt()
            batch = None
            if not halt:
                claimed = leases.claim_rows(run_id, owner, batch_rows, lease)
                if claimed:
                    batch = launch(claimed, pool)
            _commit()
            if inflight is not None and not file(inflight):
                halt = True
            if halt:
                if batch is not None:
                    batch.scope.stop.set()  # rows not started yet go back untouched
                    file(batch)
                break
            if batch is None and inflight is None:
                finished = leases.finish_if_done(run_id)
                _commit()
                if finished:
                    break
                next_due = db.session.scalar(
                    sa.select(sa.func.min(RunRow.next_attempt_at)).where(
                        RunRow.run_id == run_id, RunRow.status == "pending"
                    )
                )
                _commit()
                if next_due is None:
                    break  # what is left is leased by another job or awaiting callbacks
                wait = (next_due - utcnow()).total_seconds()
                if time.monotonic() + wait >= deadline:
                    more_left = True
                    break
                time.sleep(min(max(wait, 0.05), 2.0))
            inflight = batch
    stats["job_s"] = time.monotonic() - (deadline - budget)
    # Whatever this job still holds goes back (a pause or a budget end mid-way).
    leases.release_leases(run_id, owner)
    leases.finish_if_done(run_id)
    _commit()
    with contextlib.suppress(RedisError):
        redis.delete(jobs.alive_key(run_id, slot))
    if more_left:
        jobs.enqueue_job(executor, run_id, slot, f"enrich-{run_id}-{slot}-c{int(time.time())}")
        _commit()
    return stats
