"""The outbox guarantees, against real PostgreSQL and Redis: after commit, never on rollback, never lost."""

from __future__ import annotations

import pytest
from rq import Queue
from sqlalchemy import select, update

from morket.core.jobs import QUEUE_DEFAULT, enqueue_after_commit, relay_committed, relay_outbox
from morket.core.models import OutboxMessage
from morket.devservices import EmbeddedRedis

TASK = "morket.accounts.tasks.delete_expired_user_tokens"


def default_queue(app) -> Queue:
    return Queue(QUEUE_DEFAULT, connection=app.extensions["morket_redis"])


def test_job_reaches_rq_after_commit_and_not_before(app, committed):
    queue = default_queue(app)
    enqueue_after_commit(TASK, queue=QUEUE_DEFAULT, job_id="cleanup-1")
    assert queue.fetch_job("cleanup-1") is None
    with app.app_context():  # another session, as the scheduler's relay would use
        assert relay_outbox() == 0, "an uncommitted outbox row must be invisible to other relays"
    assert queue.count == 0

    committed.db.session.commit()
    assert relay_committed() == 1

    job = queue.fetch_job("cleanup-1")
    assert job is not None
    assert job.args == (TASK, [])
    assert queue.job_ids == ["cleanup-1"]
    row = committed.db.session.scalar(select(OutboxMessage).where(OutboxMessage.job_id == "cleanup-1"))
    assert row.relayed_at is not None


def test_rolled_back_job_never_reaches_rq(app, committed):
    queue = default_queue(app)
    enqueue_after_commit(TASK, queue=QUEUE_DEFAULT, job_id="cleanup-2")
    committed.db.session.rollback()

    assert relay_committed() == 0
    assert relay_outbox() == 0
    assert queue.count == 0
    assert committed.db.session.scalars(select(OutboxMessage)).all() == []


def test_relaying_the_same_row_twice_enqueues_one_job(app, committed):
    queue = default_queue(app)
    enqueue_after_commit(TASK, queue=QUEUE_DEFAULT, job_id="cleanup-3")
    committed.db.session.commit()
    assert relay_outbox() == 1
    # A relay that died after enqueueing but before its commit leaves the row pending.
    committed.db.session.execute(update(OutboxMessage).values(relayed_at=None))
    committed.db.session.commit()

    assert relay_outbox() == 1
    assert queue.job_ids == ["cleanup-3"]


@pytest.fixture
def outage_redis(tmp_path):
    """An embedded Redis of this test's own, which the test may stop and start again."""
    server = EmbeddedRedis(tmp_path / "redis").start()
    yield server
    server.stop()


def test_redis_down_at_commit_keeps_the_job_until_redis_returns(app, committed, outage_redis):
    from redis import Redis

    from morket import create_app
    from morket.extensions import db

    outage_app = create_app(
        {
            "SQLALCHEMY_DATABASE_URI": app.config["SQLALCHEMY_DATABASE_URI"],
            "REDIS_URL": outage_redis.url,
            "RATELIMIT_STORAGE_URI": outage_redis.url,
            "TESTING": True,
        }
    )

    @outage_app.post("/outbox-probe")
    def outbox_probe():
        enqueue_after_commit(TASK, queue=QUEUE_DEFAULT, job_id="cleanup-4")
        db.session.commit()
        return "saved"

    outage_app.config["WTF_CSRF_ENABLED"] = False
    outage_redis.stop()

    response = outage_app.test_client().post("/outbox-probe")

    assert response.status_code == 200, "Redis being down must not fail the request that committed"
    with outage_app.app_context():
        row = db.session.scalar(select(OutboxMessage).where(OutboxMessage.job_id == "cleanup-4"))
        assert row.relayed_at is None
        assert row.attempts == 1
        assert relay_outbox() == 0

        outage_redis.start()
        assert relay_outbox() == 1
        queue = Queue(QUEUE_DEFAULT, connection=Redis.from_url(outage_redis.url))
        assert queue.job_ids == ["cleanup-4"]
        db.session.refresh(row)
        assert row.relayed_at is not None
    with outage_app.app_context():
        db.engine.dispose()
    outage_app.extensions["morket_redis"].close()
