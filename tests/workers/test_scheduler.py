"""The scheduler: periodic jobs run once per period however many schedulers run, and the clean-ups."""

from __future__ import annotations

import secrets
from datetime import timedelta

from rq import Queue
from sqlalchemy import select

from morket.accounts.models import RefreshToken, UserToken
from morket.accounts.tasks import delete_expired_refresh_tokens, delete_expired_user_tokens
from morket.core.db import utcnow
from morket.core.jobs import QUEUE_DEFAULT, enqueue_after_commit
from morket.core.models import OutboxMessage
from tests.factories import UserFactory, workspace_with_owner
from workers.schedule import SCHEDULE
from workers.scheduler import Scheduler

NOW = 1_800_000_000.0  # a fixed instant, so that periods do not roll over mid-test


def test_two_schedulers_run_each_period_once(app, committed):
    redis = app.extensions["morket_redis"]
    first, second = Scheduler(redis), Scheduler(redis)

    assert first.tick(NOW) == [job.name for job in SCHEDULE]
    assert second.tick(NOW) == []
    assert second.tick(NOW + 1) == []
    every_two = [job.name for job in SCHEDULE if job.interval == 2]
    assert "relay-outbox" in every_two
    assert second.tick(NOW + 2) == every_two
    assert first.tick(NOW + 2) == []

    queue = Queue(QUEUE_DEFAULT, connection=redis)
    on_default = {job.name: job.interval for job in SCHEDULE if job.queue == QUEUE_DEFAULT}
    assert sorted(queue.job_ids) == sorted(
        [f"schedule-{name}-{int(NOW // interval)}" for name, interval in on_default.items()]
        + [f"schedule-{name}-{int((NOW + 2) // 2)}" for name, interval in on_default.items() if interval == 2]
    )
    assert f"schedule-delete-expired-user-tokens-{int(NOW // 86400)}" in queue.job_ids


def test_scheduler_relay_delivers_jobs_left_behind(app, committed):
    enqueue_after_commit("morket.accounts.tasks.delete_expired_user_tokens", queue=QUEUE_DEFAULT, job_id="left-1")
    committed.db.session.commit()  # committed, but nobody relayed it (a web process died)

    relay_only = [job for job in SCHEDULE if job.name == "relay-outbox"]
    assert Scheduler(app.extensions["morket_redis"], relay_only).tick(NOW) == ["relay-outbox"]

    assert Queue(QUEUE_DEFAULT, connection=app.extensions["morket_redis"]).job_ids == ["left-1"]
    committed.db.session.rollback()
    assert committed.db.session.scalar(select(OutboxMessage.relayed_at)) is not None


def _user_token(user, hours: int) -> UserToken:
    return UserToken(
        user_id=user.id, purpose="reset", token_hash=secrets.token_hex(32), expires_at=utcnow() + timedelta(hours=hours)
    )


def test_delete_expired_user_tokens_keeps_live_ones(db):
    user = UserFactory()
    expired, live = _user_token(user, -1), _user_token(user, 1)
    db.session.add_all([expired, live])
    db.session.flush()

    assert delete_expired_user_tokens() == 1
    assert set(db.session.scalars(select(UserToken.id))) == {live.id}


def test_delete_expired_refresh_tokens_keeps_used_ones_while_their_family_lives(db):
    workspace, user = workspace_with_owner()
    now = utcnow()

    def token(expires_in: int, family_in: int, used: bool) -> RefreshToken:
        return RefreshToken(
            user_id=user.id,
            workspace_id=workspace.id,
            family_id=secrets.token_hex(8),
            token_hash=secrets.token_hex(32),
            expires_at=now + timedelta(hours=expires_in),
            family_expires_at=now + timedelta(hours=family_in),
            used_at=now if used else None,
        )

    expired_unused = token(-1, 24, used=False)
    expired_used_live_family = token(-1, 24, used=True)
    expired_used_dead_family = token(-2, -1, used=True)
    live = token(1, 24, used=False)
    db.session.add_all([expired_unused, expired_used_live_family, expired_used_dead_family, live])
    db.session.flush()

    assert delete_expired_refresh_tokens() == 2
    remaining = set(db.session.scalars(select(RefreshToken.id)))
    assert remaining == {expired_used_live_family.id, live.id}
