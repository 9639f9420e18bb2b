"""A run's jobs: how many work on it at once, their ids, and the Redis marks that say one is alive."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from flask import current_app
from redis import Redis

from morket.core.jobs import QUEUE_ENRICHMENT, enqueue_after_commit
from morket.runs.executor import Executor

ALIVE_PREFIX = "morket:enrich:alive"


def settings() -> Mapping[str, Any]:
    """The app's MORKET settings."""
    return current_app.config["MORKET"]


def setting(name: str, default: Any) -> Any:
    """One MORKET setting, ``default`` when unset."""
    value = settings().get(name)
    return default if value is None else value


def redis_client() -> Redis:
    """The app's Redis connection (limiters, breakers, alive marks)."""
    return current_app.extensions["morket_redis"]


def redis_answers() -> bool:
    """Whether Redis answers a ping now."""
    from redis.exceptions import RedisError

    try:
        return bool(redis_client().ping())
    except RedisError:
        return False


def alive_key(run_id: int, slot: int) -> str:
    """The Redis key a live job of ``slot`` keeps fresh while it works on the run."""
    return f"{ALIVE_PREFIX}:{run_id}:{slot}"


def jobs_per_run() -> int:
    """How many jobs work on one run at once (``ENRICHMENT_JOBS_PER_RUN``)."""
    return max(1, int(setting("ENRICHMENT_JOBS_PER_RUN", 2)))


def enqueue_job(executor: Executor, run_id: int, slot: int, job_id: str) -> None:
    """Write one job of the run to the outbox (it is relayed after the commit)."""
    enqueue_after_commit(executor.job, run_id, slot, queue=QUEUE_ENRICHMENT, job_id=job_id)


def enqueue_jobs(executor: Executor, run_id: int, suffix: str = "") -> None:
    """Write the run's jobs to the outbox (ids ``enrich-<run>-<k>[-suffix]``; a relay dedupes them)."""
    for slot in range(jobs_per_run()):
        enqueue_job(executor, run_id, slot, f"enrich-{run_id}-{slot}" + (f"-{suffix}" if suffix else ""))


def ensure_jobs(executor: Executor, run_id: int, tag: str) -> int:
    """Enqueue a job for each slot of the run that no live job holds; return how many."""
    redis = redis_client()
    started = 0
    for slot in range(jobs_per_run()):
        if redis.exists(alive_key(run_id, slot)):
            continue
        enqueue_job(executor, run_id, slot, f"enrich-{run_id}-{slot}-{tag}")
        started += 1
    return started
