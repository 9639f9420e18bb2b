"""Background jobs: queue names, the outbox-backed ``enqueue_after_commit``, and its relay.

A job is written to the ``outbox`` table inside the caller's transaction. After the
transaction commits, the relay moves the row to RQ. So a job is never enqueued for a
transaction that rolled back, and never lost when Redis is down at commit time: the scheduler's
periodic relay picks up whatever the after-commit attempt could not deliver.
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Callable
from typing import Any

from flask import current_app
from redis import Redis
from redis.exceptions import RedisError
from rq import Queue, Retry
from sqlalchemy import case, event, select, update
from sqlalchemy.orm import Session

from morket.core.db import utcnow
from morket.core.models import OutboxMessage
from morket.extensions import db

log = logging.getLogger("morket.jobs")

# Queue names, defined once. The enrichment and scrape queues arrive with their capabilities.
QUEUE_DEFAULT = "default"
QUEUE_IO = "io"
QUEUE_ENRICHMENT = "enrichment"
QUEUE_SCRAPE = "scrape"
QUEUES: tuple[str, ...] = (QUEUE_DEFAULT, QUEUE_IO, QUEUE_ENRICHMENT, QUEUE_SCRAPE)

JOB_TIMEOUT_SECONDS = 600
RELAY_BATCH = 500
# A failed job is retried after these delays (seconds) before it lands in the failed registry.
RETRY_INTERVALS = (10, 60, 300)


def redis_connection() -> Redis:
    """Return the app's Redis client (one per app, shared by rate limits, RQ and caches)."""
    return current_app.extensions["morket_redis"]


def get_queue(name: str) -> Queue:
    """Return the RQ queue ``name``; unknown names are a programming error."""
    if name not in QUEUES:
        raise ValueError(f"unknown queue {name!r}")
    return Queue(name, connection=redis_connection(), default_timeout=JOB_TIMEOUT_SECONDS)


def _func_path(func: Callable[..., Any] | str) -> str:
    if isinstance(func, str):
        return func
    return f"{func.__module__}.{func.__qualname__}"


def enqueue_after_commit(
    func: Callable[..., Any] | str, *args: Any, queue: str = QUEUE_DEFAULT, job_id: str
) -> OutboxMessage:
    """Write ``func(*args)`` to the outbox in this transaction; it reaches RQ after commit.

    ``args`` must be JSON values (ids, never secrets). ``job_id`` is deterministic
    (``<kind>-<id>[-<part>]``) so that relaying the same row twice enqueues one job.
    """
    if queue not in QUEUES:
        raise ValueError(f"unknown queue {queue!r}")
    message = OutboxMessage(kind="job", queue=queue, func=_func_path(func), job_id=job_id, args=list(args))
    db.session.add(message)
    db.session.flush()
    db.session.info.setdefault("morket_outbox_ids", []).append(message.id)
    return message


def resolve_func(path: str) -> Callable[..., Any]:
    """Import ``module.attr`` for a job; only Morket's own task modules may be named."""
    if not path.startswith(("morket.", "workers.")):
        raise ValueError(f"refusing to run job function outside Morket: {path}")
    module_name, _, attr = path.rpartition(".")
    return getattr(importlib.import_module(module_name), attr)


def enqueue_now(func: Callable[..., Any] | str, *args: Any, queue: str = QUEUE_DEFAULT, job_id: str) -> None:
    """Enqueue ``func(*args)`` on RQ now, with the relay's options, for jobs that need no outbox: ones
    a periodic job would do anyway (a lost enqueue only delays the work). Raises RedisError."""
    get_queue(queue).enqueue_call(
        "workers.runner.run_job",
        args=(_func_path(func), list(args)),
        job_id=job_id,
        timeout=JOB_TIMEOUT_SECONDS,
        result_ttl=3600,
        failure_ttl=7 * 86400,
        retry=Retry(max=len(RETRY_INTERVALS), interval=list(RETRY_INTERVALS)),
    )


def relay_outbox(limit: int = RELAY_BATCH, ids: list[int] | None = None) -> int:
    """Move committed, unrelayed outbox rows to RQ; return how many were relayed.

    One statement claims the rows (locked with SKIP LOCKED, so several relays can run at once
    without double work) and marks them relayed; the mark commits after the enqueues. A row Redis
    refuses, and those after it, are unmarked for the next relay. RQ dedupes on the job id for the
    case where a relay dies between enqueue and commit.
    """
    table = OutboxMessage.__table__
    claim = (
        select(OutboxMessage.id)
        .where(OutboxMessage.relayed_at.is_(None), OutboxMessage.kind == "job")
        .order_by(OutboxMessage.id)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    if ids is not None:
        claim = claim.where(OutboxMessage.id.in_(ids))
    claimed = db.session.execute(
        update(table)
        .where(table.c.id.in_(claim.scalar_subquery()))
        .values(relayed_at=utcnow())
        .returning(table.c.id, table.c.queue, table.c.func, table.c.job_id, table.c.args),
        execution_options={"synchronize_session": False},
    ).all()
    relayed = 0
    for position, row in enumerate(sorted(claimed, key=lambda r: r.id)):
        try:
            queue = get_queue(row.queue)
            existing = queue.fetch_job(row.job_id)
            if existing is None or existing.get_status(refresh=True) in {"finished", "failed", "canceled", None}:
                if existing is not None:
                    existing.delete()
                queue.enqueue_call(
                    "workers.runner.run_job",
                    args=(row.func, row.args),
                    job_id=row.job_id,
                    timeout=JOB_TIMEOUT_SECONDS,
                    result_ttl=3600,
                    failure_ttl=7 * 86400,
                    retry=Retry(max=len(RETRY_INTERVALS), interval=list(RETRY_INTERVALS)),
                )
        except RedisError as exc:
            log.warning("outbox relay could not reach Redis; will retry", extra={"data": {"error": str(exc)}})
            left = [r.id for r in sorted(claimed, key=lambda r: r.id)[position:]]
            db.session.execute(
                update(table)
                .where(table.c.id.in_(left))
                .values(
                    relayed_at=None,
                    attempts=table.c.attempts + case((table.c.id == row.id, 1), else_=0),
                ),
                execution_options={"synchronize_session": False},
            )
            break
        relayed += 1
    db.session.commit()
    return relayed


def relay_committed() -> int:
    """Relay the outbox rows this session committed; the scheduler catches any left behind."""
    ids = db.session.info.pop("morket_outbox_committed", None)
    if not ids:
        return 0
    try:
        return relay_outbox(ids=ids)
    except Exception:  # the periodic relay retries; the request must not fail
        log.exception("after-commit relay failed; the scheduler will relay later")
        db.session.rollback()
        return 0


@event.listens_for(Session, "after_commit")
def _outbox_after_commit(session: Session) -> None:
    ids = session.info.pop("morket_outbox_ids", None)
    if ids:
        session.info.setdefault("morket_outbox_committed", []).extend(ids)


@event.listens_for(Session, "after_rollback")
def _outbox_after_rollback(session: Session) -> None:
    session.info.pop("morket_outbox_ids", None)
