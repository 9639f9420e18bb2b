"""The reconciler (a periodic job body, committing step by step): re-queue expired leases, time out
callbacks, resume paused runs whose cause is gone, and start jobs for runs that have none.

Each executor reconciles its own kind of run (``Run.kind``); expired leases are put back for all.
"""

from __future__ import annotations

import time

import sqlalchemy as sa
from redis.exceptions import RedisError

from morket.extensions import db
from morket.runs import jobs, leases
from morket.runs.executor import Executor
from morket.runs.models import ACTIVE_RUN_STATUSES, Run, RunRow

# A run paused with a reason starting so (an AI run at its budget) waits for a person: the reconciler
# leaves it paused, its open rows queued, until someone raises the budget or cancels it.
PAUSE_HELD_PREFIX = "Stopped:"


def _resume_balance(executor: Executor, run_id: int) -> int:
    """The balance a run paused for credits needs before it is worth resuming."""
    run = db.session.get(Run, run_id)
    try:
        return max(executor.min_balance(executor.plan(run, resolve_keys=False)), 1)
    except Exception:  # noqa: BLE001 - a run whose settings no longer load resumes and fails with a reason
        return 1


def reconcile(executor: Executor) -> dict[str, int]:
    """Re-queue expired leases, time out callbacks, resume paused runs, restart runs with no job."""
    from morket.credits.service import balance

    report = {"leases": 0, "callbacks": 0, "resumed": 0, "completed": 0, "jobs": 0}
    report["leases"] = len(leases.expire_leases())
    report["callbacks"] = len(leases.expire_callbacks())
    db.session.commit()
    redis_ok = jobs.redis_answers()
    runs = Run.__table__
    tag = f"r{int(time.time())}"
    paused = db.session.execute(
        sa.select(runs.c.id, runs.c.workspace_id, runs.c.pause_reason).where(
            runs.c.status == "paused", runs.c.kind == executor.kind
        )
    ).all()
    for run_id, workspace_id, reason in paused:
        if leases.finish_if_done(run_id):
            report["completed"] += 1
            continue
        if not redis_ok or (reason or "").startswith(PAUSE_HELD_PREFIX):
            continue
        if reason == leases.PAUSE_CREDITS and balance(workspace_id) < _resume_balance(executor, run_id):
            continue
        db.session.execute(
            sa.update(runs)
            .where(runs.c.id == run_id, runs.c.status == "paused")
            .values(status="running", pause_reason=None, updated_at=sa.func.clock_timestamp())
        )
        report["resumed"] += 1
    db.session.commit()
    active = db.session.scalars(
        sa.select(runs.c.id).where(runs.c.status.in_(ACTIVE_RUN_STATUSES), runs.c.kind == executor.kind)
    ).all()
    rr = RunRow.__table__
    for run_id in active:
        if leases.finish_if_done(run_id):
            report["completed"] += 1
            continue
        if not redis_ok:
            continue
        soon = db.session.scalar(
            sa.select(sa.func.count())
            .select_from(rr)
            .where(
                rr.c.run_id == run_id,
                rr.c.status == "pending",
                rr.c.next_attempt_at <= sa.func.clock_timestamp() + sa.text("interval '30 seconds'"),
            )
        )
        if soon:
            try:
                report["jobs"] += jobs.ensure_jobs(executor, run_id, tag)
            except RedisError:
                redis_ok = False
    db.session.commit()
    return report
