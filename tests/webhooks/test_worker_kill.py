"""A real worker SIGKILLed while it delivers: nothing is lost, order per endpoint holds, duplicates keep their id."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import delete, func, select

from morket.accounts.models import User
from morket.core.jobs import relay_outbox
from morket.core.models import OutboxMessage
from morket.webhooks import service, tasks
from morket.webhooks.models import WebhookDelivery, WebhookEvent
from morket.workspaces.models import Membership, Workspace
from tests.support.processes import kill_tree
from tests.support.waiting import wait_until
from tests.webhooks.test_delivery import independent_verify

ROOT = Path(__file__).resolve().parents[2]
EVENTS = 30


@pytest.fixture
def committed_endpoint(app, receiver, hook_settings):
    """A workspace, an endpoint on the loopback receiver and EVENTS events, all committed for real."""
    from morket.extensions import db

    with app.app_context():
        user = User(email="kill-hooks@example.com", name="Kill", password_hash="!")
        workspace = Workspace(slug="kill-hooks", name="Kill Hooks")
        db.session.add_all([user, workspace])
        db.session.flush()
        db.session.add(Membership(workspace_id=workspace.id, user_id=user.id, role="owner"))
        endpoint, secret = service.create_endpoint(workspace, user, receiver.url, ["row.created"])
        for n in range(EVENTS):
            service.emit_event(workspace.id, "row.created", {"row_ids": [n]}, endpoints=[endpoint])
        db.session.commit()
        try:
            yield db, endpoint.id, secret, workspace.id
        finally:
            db.session.rollback()
            db.session.execute(delete(OutboxMessage))
            db.session.execute(delete(Workspace).where(Workspace.id == workspace.id))
            db.session.execute(delete(User).where(User.id == user.id))
            db.session.commit()


def _worker(app) -> subprocess.Popen:
    env = dict(os.environ)
    env.update(
        MORKET_ENV="development",
        MORKET_DATABASE_URL=app.config["SQLALCHEMY_DATABASE_URI"],
        MORKET_REDIS_URL=app.config["REDIS_URL"],
        MORKET_MASTER_KEY=app.config["MORKET"]["MASTER_KEY"].hex(),
        MORKET_WEBHOOK_ALLOW_HTTP_LOOPBACK="true",
        MORKET_LOG_LEVEL="WARNING",
        PYTHONPATH=str(ROOT),
    )
    return subprocess.Popen(  # our own entry point, in its own process group (the work horse too)
        [sys.executable, "-m", "workers", "io"], env=env, cwd=ROOT, start_new_session=True
    )


def _kill(proc: subprocess.Popen) -> None:
    kill_tree(proc, timeout=10)  # the work horse too: it runs in a session of its own


def test_sigkill_mid_delivery_loses_nothing(app, receiver, committed_endpoint):
    db, endpoint_id, secret, workspace_id = committed_endpoint
    receiver.delay = 0.1  # each answer takes 100 ms: the kill lands mid-run
    with app.app_context():
        relay_outbox()
    first = _worker(app)
    try:
        assert wait_until(lambda: len(receiver.received) >= 8, timeout=30), "the worker sent nothing"
        _kill(first)
    finally:
        _kill(first)
    seen_at_kill = len(receiver.received)
    assert seen_at_kill < EVENTS
    second = _worker(app)
    try:

        def all_delivered() -> bool:
            with app.app_context():
                tasks.wake_due_endpoints()  # what the scheduler does every 5 s
                db.session.commit()
                relay_outbox()
                left = db.session.scalar(
                    select(func.count())
                    .select_from(WebhookDelivery)
                    .where(WebhookDelivery.endpoint_id == endpoint_id, WebhookDelivery.status != "succeeded")
                )
                return left == 0

        assert wait_until(all_delivered, timeout=60, interval=0.5), f"stuck after {len(receiver.received)} requests"
    finally:
        _kill(second)
    with app.app_context():
        expected = list(
            db.session.scalars(
                select(WebhookEvent.uid).where(WebhookEvent.workspace_id == workspace_id).order_by(WebhookEvent.id)
            )
        )
    ids = [r.headers["webhook-id"] for r in receiver.received]
    assert set(ids) == set(expected)  # nothing lost
    assert list(dict.fromkeys(ids)) == expected  # first arrivals in event order
    assert all(independent_verify(secret, r.headers, r.body) for r in receiver.received)
    # Re-sent after the kill: only events whose success had not been committed, with the same id.
    assert len(ids) - len(set(ids)) <= seen_at_kill
