"""Fixtures for tests that need committed data, visible to other processes and connections."""

from __future__ import annotations

import os
import secrets
import sys
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import delete

from morket.accounts.models import User, UserToken
from morket.core.db import utcnow
from morket.core.models import OutboxMessage

ROOT = Path(__file__).resolve().parents[2]


class Committed:
    """Writes committed rows through the app's real session and deletes them afterwards."""

    def __init__(self, db) -> None:
        self.db = db
        self.user_ids: list[int] = []

    def user(self) -> User:
        user = User(email=f"worker-{secrets.token_hex(6)}@example.com", password_hash="not-a-hash")
        self.db.session.add(user)
        self.db.session.commit()
        self.user_ids.append(user.id)
        return user

    def user_token(self, user: User, *, expired: bool) -> int:
        delta = timedelta(hours=-1 if expired else 1)
        token = UserToken(
            user_id=user.id, purpose="verify", token_hash=secrets.token_hex(32), expires_at=utcnow() + delta
        )
        self.db.session.add(token)
        self.db.session.commit()
        return token.id

    def cleanup(self) -> None:
        session = self.db.session
        session.rollback()
        session.execute(delete(OutboxMessage))
        if self.user_ids:
            session.execute(delete(User).where(User.id.in_(self.user_ids)))
        session.commit()


@pytest.fixture
def committed(app) -> Iterator[Committed]:
    """Commit for real (no savepoint), inside an app context; delete the rows afterwards."""
    from morket.extensions import db

    with app.app_context():
        helper = Committed(db)
        helper.cleanup()
        try:
            yield helper
        finally:
            helper.cleanup()


@pytest.fixture
def process_env(app) -> dict[str, str]:
    """Environment for a Morket process on the test database and Redis."""
    env = dict(os.environ)
    env.update(
        MORKET_ENV="development",
        MORKET_DATABASE_URL=app.config["SQLALCHEMY_DATABASE_URI"],
        MORKET_REDIS_URL=app.config["REDIS_URL"],
        MORKET_LOG_LEVEL="WARNING",
        PYTHONPATH=str(ROOT),
    )
    return env


@pytest.fixture
def python() -> str:
    return sys.executable
