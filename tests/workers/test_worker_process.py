"""A real ``python -m workers`` process: its jobs commit, a failing job leaves nothing behind."""

from __future__ import annotations

import signal
import subprocess
import time

from rq import Queue, Worker
from rq.registry import FailedJobRegistry, ScheduledJobRegistry
from sqlalchemy import create_engine, select, text

from morket.accounts.models import UserToken
from morket.core.jobs import QUEUE_DEFAULT, enqueue_after_commit, relay_committed
from tests.support.waiting import wait_until

TASK = "morket.accounts.tasks.delete_expired_user_tokens"


def token_ids(committed) -> set[int]:
    committed.db.session.rollback()
    return set(committed.db.session.scalars(select(UserToken.id)))


def enqueue_cleanup(committed, job_id: str) -> None:
    enqueue_after_commit(TASK, queue=QUEUE_DEFAULT, job_id=job_id)
    committed.db.session.commit()
    assert relay_committed() == 1


def test_worker_process_commits_a_jobs_writes_and_stops_on_sigterm(app, committed, process_env, python):
    user = committed.user()
    expired = committed.user_token(user, expired=True)
    live = committed.user_token(user, expired=False)

    worker = subprocess.Popen([python, "-m", "workers", "default"], env=process_env)
    try:
        enqueue_cleanup(committed, "cleanup-worker-1")
        assert wait_until(lambda: expired not in token_ids(committed)), "the worker did not commit the job's delete"
        assert live in token_ids(committed)

        worker.send_signal(signal.SIGTERM)
        assert worker.wait(timeout=15) == 0
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.wait()


def test_job_that_fails_after_writing_leaves_no_partial_writes(app, committed, process_env, python):
    user = committed.user()
    first = committed.user_token(user, expired=True)
    second = committed.user_token(user, expired=True)
    # Another transaction holds the second token: the job deletes the first, then waits on the
    # second until its one-second hard limit kills it mid-transaction.
    engine = create_engine(app.config["SQLALCHEMY_DATABASE_URI"])
    try:
        with engine.connect() as blocker, engine.connect().execution_options(isolation_level="AUTOCOMMIT") as observer:
            blocker.execute(text("SELECT id FROM user_tokens WHERE id = :id FOR UPDATE"), {"id": second})
            enqueue_cleanup(committed, "cleanup-worker-2")
            worker = subprocess.Popen(
                [python, "-m", "workers", "default", "--burst", "--job-timeout", "1"], env=process_env
            )
            try:
                # While the job waits, the first token already carries its (uncommitted) delete.
                assert wait_until(
                    lambda: (
                        observer.execute(
                            text(
                                "SELECT count(*) FROM pg_stat_activity"
                                " WHERE wait_event_type = 'Lock' AND query LIKE 'DELETE%'"
                            )
                        ).scalar()
                        == 1
                    )
                )
                xmax = observer.execute(
                    text("SELECT xmax::text FROM user_tokens WHERE id = :id"), {"id": first}
                ).scalar()
                assert xmax != "0"
                assert worker.wait(timeout=60) == 0
            finally:
                if worker.poll() is None:
                    worker.kill()
                    worker.wait()
            blocker.rollback()
    finally:
        engine.dispose()

    # The failed job waits for its first retry (or, with retries spent, sits in the failed registry).
    redis = app.extensions["morket_redis"]
    waiting = ScheduledJobRegistry(QUEUE_DEFAULT, connection=redis).get_job_ids()
    failed = FailedJobRegistry(QUEUE_DEFAULT, connection=redis).get_job_ids()
    assert "cleanup-worker-2" in waiting + failed
    job = Queue(QUEUE_DEFAULT, connection=app.extensions["morket_redis"]).fetch_job("cleanup-worker-2")
    assert job.retries_left == 2, "the timed-out job should be waiting for its first of three retries"
    assert {first, second} <= token_ids(committed), "the failed job's delete of the first token was rolled back"


def test_worker_process_outlives_a_redis_outage_and_works_after_it(app, committed, process_env, python, tmp_path):
    from redis import Redis

    from morket.devservices import EmbeddedRedis

    redis_server = EmbeddedRedis(tmp_path / "redis").start()
    env = dict(process_env, MORKET_REDIS_URL=redis_server.url)
    worker = subprocess.Popen([python, "-m", "workers", "default"], env=env)
    try:
        queue = Queue(QUEUE_DEFAULT, connection=Redis.from_url(redis_server.url))
        assert wait_until(lambda: bool(Worker.all(connection=queue.connection))), "the worker never registered"
        # Redis goes away while a job runs: RQ's own loop gives up when the job ends.
        queue.enqueue_call("time.sleep", args=(3,), job_id="sleeping-through-the-outage")
        assert wait_until(lambda: queue.count == 0), "the worker never took the job"
        redis_server.stop()
        time.sleep(6)
        assert worker.poll() is None, "the worker process quit when Redis went away"
        redis_server.start()

        user = committed.user()
        expired = committed.user_token(user, expired=True)
        queue = Queue(QUEUE_DEFAULT, connection=Redis.from_url(redis_server.url))
        queue.enqueue_call("workers.runner.run_job", args=(TASK, []), job_id="cleanup-after-outage")
        ran = wait_until(lambda: expired not in token_ids(committed), timeout=60)
        assert ran, "no worker ran the job after Redis returned"

        worker.send_signal(signal.SIGTERM)
        assert worker.wait(timeout=45) == 0
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.wait()
        redis_server.stop()
