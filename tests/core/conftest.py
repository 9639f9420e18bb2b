"""Fixtures for the guard-rail tests: separate app instances on the same test database and Redis."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from flask import Flask


@pytest.fixture
def make_app(app, database_url: str, services: dict[str, str], smtp_server) -> Iterator[Callable[..., Flask]]:
    """Build another Morket app on the test database and Redis; ``MORKET`` keys override settings.

    The session app is a dependency so that the database is migrated first.
    """
    from morket import create_app
    from morket.extensions import db

    made: list[Flask] = []

    def _make(morket: dict[str, Any] | None = None, **config: Any) -> Flask:
        overrides: dict[str, Any] = {
            "SQLALCHEMY_DATABASE_URI": database_url,
            "REDIS_URL": services["redis"],
            "RATELIMIT_STORAGE_URI": services["redis"],
            "TESTING": True,
            "MORKET": {"ENV": "test", "SMTP_HOST": smtp_server.host, "SMTP_PORT": smtp_server.port, **(morket or {})},
        }
        overrides.update(config)
        made.append(create_app(overrides))
        return made[-1]

    yield _make
    for other in made:
        with other.app_context():
            db.engine.dispose()
        other.extensions["morket_redis"].close()
