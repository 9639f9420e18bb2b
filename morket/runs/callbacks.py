"""Asynchronous answers (a provider's webhook, a scrape worker's result) enter the run here.

Before an executor makes a call whose answer comes later, the engine records the answer's id on
the leased row (``CallScope.reserve_callback``). An answer then finds its row whatever the row is
doing: if the row awaits it, the row goes back to pending with the answer kept on it; if the
batch that made the call is not written yet, the answer is kept on the leased row and that
batch's write continues the row from it (``write.write_outcomes``). Either way a worker picks the
row up and the executor continues from the answer, and the value is charged by the same write
as any other (no second charging path, and nobody waits for anybody).
"""

from __future__ import annotations

import json
import logging
import random
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import sqlalchemy as sa

from morket.core.db import utcnow
from morket.extensions import db
from morket.runs.executor import executor_for
from morket.runs.models import Run, RunRow

log = logging.getLogger("morket.runs")

BACKOFF_BASE_SECONDS = 2.0
BACKOFF_CAP_SECONDS = 300.0
# Outcomes after which the row keeps the answer and continues from it at the same step.
KEPT_OUTCOMES = ("hit", "not_found")
RETRIED_OUTCOMES = ("retryable", "rate_limited", "pending")


def backoff_seconds(attempt: int, base_seconds: float = BACKOFF_BASE_SECONDS) -> float:
    """Exponential backoff with jitter: about 2, 4, 8 … seconds, capped, spread ±50%."""
    base = min(BACKOFF_CAP_SECONDS, base_seconds * (2 ** max(attempt - 1, 0)))
    return base * random.uniform(0.5, 1.5)  # jitter, not security


@dataclass(frozen=True)
class Placement:
    """Where a row stands after an asynchronous answer: its step, attempts, delay and message."""

    step_index: int
    attempts: int
    delay: float
    message: str | None
    keep: bool


def place_answer(answer: Mapping[str, Any], step_index: int, attempts: int, backoff_base: float) -> Placement:
    """What an answer does to its row: continue from it, ask again later, or move to the next step."""
    outcome = answer.get("outcome")
    if outcome in KEPT_OUTCOMES:
        return Placement(step_index, 0, 0.0, None, True)
    if outcome in RETRIED_OUTCOMES:
        return Placement(
            step_index, attempts + 1, backoff_seconds(attempts + 1, backoff_base), answer.get("message"), False
        )
    return Placement(step_index + 1, 0, 0.0, answer.get("message") or outcome, False)


def _waiting(provider: str, callback_id: str) -> sa.Select:
    # A row awaiting its answer names the provider that will send it; a leased row's call may be
    # in flight to any provider of its run (the batch's write checks the provider that asked).
    return sa.select(RunRow).where(
        RunRow.callback_id == callback_id,
        sa.or_(RunRow.status == "leased", sa.and_(RunRow.status == "awaiting_callback", RunRow.provider == provider)),
    )


def find_callback_row(provider: str, callback_id: str) -> RunRow | None:
    """The run row an answer from ``provider`` with ``callback_id`` is for (for signature checks), or None."""
    if not callback_id or len(callback_id) > 64:
        return None
    return db.session.scalar(_waiting(provider, callback_id))


def complete_callback(provider: str, callback_id: str, payload: Mapping[str, Any]) -> RunRow | None:
    """File an asynchronous answer for the row waiting on ``callback_id``; None if no row waits.

    The executor records the answer (``Executor.answer``); the row then goes back to pending with
    the answer kept on it, or keeps it while the batch that made the call is being written. The
    caller verifies the signature first and commits.
    """
    from morket.runs import jobs, leases
    from morket.tables.models import Table

    if not callback_id or len(callback_id) > 64:
        return None
    row = db.session.scalar(_waiting(provider, callback_id).with_for_update())
    if row is None:
        return None
    if row.status == "leased":
        # The batch that made the call is not written yet: its write reads the answer (it knows
        # which step asked) and continues the row from it.
        early = json.loads(json.dumps(dict(payload), default=str))
        row.result = {"early": early, "callback_id": callback_id, "provider": provider}
        db.session.flush()
        return row
    run = db.session.get(Run, row.run_id)
    executor = executor_for(run)
    answer = executor.answer(run, row.row_id, row.step_index, provider, payload)
    if answer is None:
        return None
    stored = json.loads(json.dumps({**answer, "callback_id": callback_id, "step_index": row.step_index}, default=str))
    backoff_base = float(jobs.setting("ENRICHMENT_BACKOFF_SECONDS", BACKOFF_BASE_SECONDS))
    place = place_answer(stored, row.step_index, row.attempts or 0, backoff_base)
    row.status = "pending"
    row.step_index = place.step_index
    row.attempts = place.attempts
    row.result = stored if place.keep else None
    row.lease_owner = None
    row.lease_expires_at = None
    row.callback_id = None
    row.message = place.message
    row.next_attempt_at = utcnow() + timedelta(seconds=place.delay)
    table = db.session.get(Table, run.table_id)
    if table is not None:
        leases.mark_cells(table, run.column_id, run.id, [row.row_id], "queued")
    try:
        jobs.ensure_jobs(executor, run.id, f"cb{int(time.time()) // 5}")
    except Exception:  # noqa: BLE001 - Redis away: the reconciler starts the jobs later
        log.warning("could not start jobs after a callback", extra={"data": {"run_id": run.id}})
    db.session.flush()
    return row
