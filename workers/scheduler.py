"""``python -m workers.scheduler``: run the periodic jobs of workers/schedule.py.

Time is cut into periods of each job's interval, counted from the Unix epoch, so every
scheduler process agrees on which period it is. Before running a job for a period, a scheduler
claims it with ``SET <job>:<period> NX EX <interval>`` in Redis: any number of schedulers may
run, and each period's job runs once. Redis rather than PostgreSQL advisory locks, because an
advisory lock only excludes runs that overlap in time (a second scheduler arriving just after
the first finished would run the job again), and holding one means holding a database
connection for the whole job. While Redis is down nothing is claimed and nothing runs, which
costs nothing: the relay could not deliver to Redis anyway, and the clean-ups catch up in the
next period.
"""

from __future__ import annotations

import argparse
import logging
import signal
import time
from collections.abc import Sequence
from types import FrameType

from redis import Redis
from redis.exceptions import RedisError

from morket.core.jobs import enqueue_after_commit
from workers.runner import run_job, worker_app
from workers.schedule import SCHEDULE, PeriodicJob

log = logging.getLogger("morket.scheduler")

CLAIM_PREFIX = "morket:schedule"
TICK_SECONDS = 0.5


def claim_period(redis: Redis, job: PeriodicJob, now: float) -> int | None:
    """Claim the current period of ``job`` for this process; return it, or None if taken."""
    period = int(now // job.interval)
    if redis.set(f"{CLAIM_PREFIX}:{job.name}:{period}", "1", nx=True, ex=max(job.interval, 1)):
        return period
    return None


def run_periodic(job: PeriodicJob, period: int) -> None:
    """Run ``job`` inline, or enqueue it through the outbox with a job id unique to its period."""
    if job.queue is None:
        run_job(job.func, [])
        return
    run_job("workers.scheduler.enqueue_periodic", [job.name, period])


def enqueue_periodic(name: str, period: int) -> None:
    """Write the periodic job ``name`` for ``period`` to the outbox (committed by run_job)."""
    job = next(entry for entry in SCHEDULE if entry.name == name)
    enqueue_after_commit(job.func, queue=job.queue, job_id=f"schedule-{job.name}-{period}")


class Scheduler:
    """The loop: every tick, claim and run each job whose period this process has not seen yet."""

    def __init__(self, redis: Redis, schedule: Sequence[PeriodicJob] = SCHEDULE) -> None:
        self.redis = redis
        self.schedule = tuple(schedule)
        self.seen: dict[str, int] = {}
        self.stopping = False

    def tick(self, now: float | None = None) -> list[str]:
        """Run what is due in this tick; return the names of the jobs this process ran."""
        now = time.time() if now is None else now
        ran = []
        for job in self.schedule:
            period = int(now // job.interval)
            if self.seen.get(job.name) == period:
                continue
            try:
                claimed = claim_period(self.redis, job, now)
            except RedisError as exc:
                log.warning("scheduler cannot reach Redis; skipping", extra={"data": {"error": str(exc)}})
                return ran
            self.seen[job.name] = period
            if claimed is None:
                continue
            try:
                run_periodic(job, claimed)
                ran.append(job.name)
            except Exception:  # one failing job must not stop the others
                log.exception("periodic job failed", extra={"data": {"job": job.name}})
        return ran

    def stop(self, signum: int, frame: FrameType | None) -> None:
        """Finish the current tick, then leave the loop."""
        self.stopping = True

    def run(self) -> None:
        """Tick until SIGTERM or SIGINT."""
        signal.signal(signal.SIGTERM, self.stop)
        signal.signal(signal.SIGINT, self.stop)
        log.info("scheduler started", extra={"data": {"jobs": [job.name for job in self.schedule]}})
        while not self.stopping:
            self.tick()
            time.sleep(TICK_SECONDS)
        log.info("scheduler stopped")


def main(argv: Sequence[str] | None = None) -> int:
    """Run the scheduler in this process until it is told to stop."""
    argparse.ArgumentParser(prog="python -m workers.scheduler", description=__doc__.splitlines()[0]).parse_args(argv)
    app = worker_app()
    with app.app_context():
        Scheduler(app.extensions["morket_redis"]).run()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
