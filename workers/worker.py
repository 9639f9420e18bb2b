"""The worker process behind ``python -m workers``: RQ workers with a hard job time limit.

The default is a forking worker (``rq.Worker``): each job runs in a fresh work horse, so a job
that leaks memory, corrupts interpreter state or hangs inside C code is killed at the hard limit
by its parent, and the worker lives on. ``--simple`` runs jobs inside the worker process
(``rq.SimpleWorker``): about 2.5 times the throughput on tiny jobs and state such as a browser
kept between jobs, at the price of that isolation (the limit is then a SIGALRM in the job's own
process, which code stuck in C cannot notice).
"""

from __future__ import annotations

import argparse
import logging
import signal
import time
from collections.abc import Sequence

from redis import Redis
from redis.exceptions import RedisError
from rq import Queue, SimpleWorker, Worker
from rq.exceptions import StopRequested
from rq.job import Job

from morket.core.jobs import JOB_TIMEOUT_SECONDS, QUEUE_SCRAPE, QUEUES
from morket.core.runtime import freeze_loaded_objects
from workers.runner import worker_app

log = logging.getLogger("morket.worker")

DEFAULT_QUEUES: tuple[str, ...] = tuple(name for name in QUEUES if name != QUEUE_SCRAPE)


class HardLimitMixin:
    """Cap every job's timeout at the worker's hard limit, whatever the enqueuer asked for."""

    hard_limit: int = JOB_TIMEOUT_SECONDS

    def execute_job(self, job: Job, queue: Queue) -> None:
        if job.timeout is None or job.timeout < 0 or job.timeout > self.hard_limit:
            job.timeout = self.hard_limit
        super().execute_job(job, queue)  # type: ignore[misc]


class MorketWorker(HardLimitMixin, Worker):
    """Forking worker whose work horse drops the database connections it inherited."""

    def main_work_horse(self, job: Job, queue: Queue) -> None:
        from morket.extensions import db

        # A forked child must never talk over the parent's sockets: dispose(close=False) forgets
        # the inherited pool without closing connections the parent may still own.
        with worker_app().app_context():
            db.engine.dispose(close=False)
        super().main_work_horse(job, queue)


class MorketSimpleWorker(HardLimitMixin, SimpleWorker):
    """In-process worker (``--simple``)."""


def build_worker(
    queue_names: Sequence[str], *, simple: bool = False, hard_limit: int = JOB_TIMEOUT_SECONDS
) -> Worker | SimpleWorker:
    """Return a worker on the app's Redis listening to ``queue_names`` in priority order."""
    app = worker_app()
    # What is loaded now lives as long as the process, here and in every work horse forked from
    # here: out of the garbage collector's passes with it.
    freeze_loaded_objects()
    # A connection of its own: RQ raises the socket timeout for its blocking dequeue, which
    # must not leak into the client that jobs use for rate limits and caches.
    connection = Redis.from_url(app.config["REDIS_URL"], socket_connect_timeout=5, health_check_interval=30)
    queues = [Queue(name, connection=connection, default_timeout=hard_limit) for name in queue_names]
    worker_class = MorketSimpleWorker if simple else MorketWorker
    worker = worker_class(queues, connection=connection)
    worker.hard_limit = hard_limit
    return worker


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m workers", description="Run a Morket RQ worker.")
    parser.add_argument(
        "queues",
        nargs="*",
        metavar="QUEUE",
        help=f"queues to listen to, highest priority first: {', '.join(QUEUES)} (default: {' '.join(DEFAULT_QUEUES)})",
    )
    parser.add_argument("--simple", action="store_true", help="run jobs in this process instead of a forked horse")
    parser.add_argument("--burst", action="store_true", help="quit once the queues are empty")
    parser.add_argument(
        "--job-timeout",
        type=int,
        default=JOB_TIMEOUT_SECONDS,
        help=f"hard time limit per job in seconds (default {JOB_TIMEOUT_SECONDS})",
    )
    args = parser.parse_args(argv)
    unknown = [name for name in args.queues if name not in QUEUES]
    if unknown:
        parser.error(f"unknown queue {unknown[0]!r}; choose from {', '.join(QUEUES)}")
    if args.job_timeout < 1:
        parser.error("--job-timeout must be at least 1 second")
    args.queues = list(dict.fromkeys(args.queues)) or list(DEFAULT_QUEUES)
    return args


def wait_for_redis(connection: Redis, *, first_wait: float = 1.0, max_wait: float = 30.0) -> None:
    """Block until ``connection`` answers a PING, backing off between tries."""
    wait = first_wait
    while True:
        try:
            connection.ping()
            return
        except RedisError:
            time.sleep(wait)
            wait = min(wait * 2, max_wait)


def main(argv: Sequence[str] | None = None) -> int:
    """Run a worker until SIGTERM/SIGINT (it finishes the current job first) or, with --burst, idle.

    RQ's loop quits when Redis goes away in the middle of a job (it reconnects only while waiting
    for one). The queue's state survives in Redis and ours in PostgreSQL, so this process waits for
    Redis to answer and starts a fresh worker instead of leaving the queues without one.
    """
    args = parse_args(argv)
    # A scrape-only worker keeps its browser between jobs, which needs jobs in this process.
    simple = args.simple or args.queues == [QUEUE_SCRAPE]
    log.info("worker starting", extra={"data": {"queues": args.queues, "simple": simple}})
    while True:
        worker = build_worker(args.queues, simple=simple, hard_limit=args.job_timeout)
        try:
            worker.work(burst=args.burst, with_scheduler=True)  # the scheduler re-queues retries when due
        except RedisError as exc:
            log.warning("worker lost Redis", extra={"data": {"error": str(exc)}})
        except StopRequested:
            return 0
        # RQ notes the time of a SIGTERM/SIGINT on the worker, whether it was busy or idle.
        if args.burst or worker._stop_requested or worker._shutdown_requested_date is not None:
            return 0
        log.warning("worker loop ended without a stop request; restarting when Redis answers")
        # RQ's handlers would report a stop to Redis, which may be the thing that is down.
        signal.signal(signal.SIGTERM, _exit_now)
        signal.signal(signal.SIGINT, _exit_now)
        wait_for_redis(worker.connection)


def _exit_now(signum: int, frame: object) -> None:
    raise SystemExit(0)
