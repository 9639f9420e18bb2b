"""Test fixtures: real PostgreSQL and Redis, migrations once per session, a savepoint per test.

Servers: ``MORKET_TEST_DATABASE_URL`` / ``MORKET_TEST_REDIS_URL`` when set, else the machine's
PostgreSQL and Redis on 127.0.0.1 when they answer, else embedded ones (see morket.devservices).
The test database name can be set with ``MORKET_TEST_DB_NAME`` so that parallel runs on one
server do not collide. Under pytest-xdist (``make test`` runs two workers) each worker takes its own
database (the name plus ``_gw<N>``) and its own Redis database number.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from flask import has_app_context
from flask.testing import FlaskClient
from flask_sqlalchemy.session import Session as FlaskSQLAlchemySession
from sqlalchemy import create_engine, event, text
from sqlalchemy.engine import make_url

from morket.devservices import resolve_test_services

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared"

os.environ.setdefault("MORKET_ENV", "test")

# pytest-xdist names its workers gw0, gw1 ...; a plain run has no worker name.
XDIST_WORKER = os.environ.get("PYTEST_XDIST_WORKER", "")


def _worker_index() -> int:
    return int(XDIST_WORKER[2:]) if XDIST_WORKER.startswith("gw") and XDIST_WORKER[2:].isdigit() else 0


def _redis_for_worker(url: str, index: int) -> str:
    """The same Redis server, on a database number of this worker's own."""
    if not index:
        return url
    base, _, db = url.rpartition("/")
    if base.endswith("/") or not db.isdigit():
        base, db = url.rstrip("/"), "0"
    return f"{base}/{(int(db) - index) % 16}"


def _recreate_database(admin_url: str, name: str) -> None:
    engine = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(
            text(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = :n AND pid <> pg_backend_pid()"
            ),
            {"n": name},
        )
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}"'))
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    engine.dispose()


@pytest.fixture(scope="session")
def services() -> Iterator[dict[str, str]]:
    """Resolve (or start) PostgreSQL, Redis and an SMTP server for this test session."""
    with resolve_test_services() as found:
        found = dict(found)
        found["redis"] = _redis_for_worker(found["redis"], _worker_index())
        yield found


@pytest.fixture(scope="session")
def database_url(services: dict[str, str]) -> str:
    name = os.environ.get("MORKET_TEST_DB_NAME", "morket_test")
    if XDIST_WORKER:
        name = f"{name}_{XDIST_WORKER.lower()}"
    if not re.fullmatch(r"[a-z0-9_]+", name):
        raise pytest.UsageError("MORKET_TEST_DB_NAME must be lowercase letters, digits and underscores")
    server = make_url(services["postgres"])
    _recreate_database(server.set(database="postgres").render_as_string(hide_password=False), name)
    return server.set(database=name).render_as_string(hide_password=False)


@pytest.fixture(scope="session")
def smtp_server(services: dict[str, str]):
    """A real SMTP server on loopback (aiosmtpd) that keeps every message it receives."""
    from tests.support.smtp import SmtpSink

    sink = SmtpSink()
    sink.start()
    yield sink
    sink.stop()


@pytest.fixture(scope="session")
def app(database_url: str, services: dict[str, str], smtp_server):
    """The Morket app on the test database, migrated once for the whole session."""
    from flask_migrate import upgrade

    from morket import create_app

    redis_url = services["redis"]
    import redis as redis_lib

    redis_lib.Redis.from_url(redis_url).flushdb()
    app = create_app(
        {
            "SQLALCHEMY_DATABASE_URI": database_url,
            "REDIS_URL": redis_url,
            "RATELIMIT_STORAGE_URI": redis_url,
            "TESTING": True,
            "SERVER_NAME": "localhost",
            "MORKET": {
                "ENV": "test",
                "SMTP_HOST": smtp_server.host,
                "SMTP_PORT": smtp_server.port,
                "BASE_URL": "http://localhost",
                # A live grid stream read by the test client ends after a second (tests that wait
                # for events set their own).
                "LIVE_STREAM_SECONDS": 1,
            },
        }
    )
    app.test_client_class = BrowserClient
    with app.app_context():
        upgrade(directory=str(ROOT / "migrations"))
    yield app
    from morket.extensions import db as _db

    with app.app_context():
        _db.engine.dispose()
    app.extensions["morket_redis"].close()


class _ConnectionSession(FlaskSQLAlchemySession):
    """Flask-SQLAlchemy's session picks the app's engine over ``bind``; stay on the test connection."""

    def get_bind(self, *args, **kwargs):
        return self.bind


@pytest.fixture
def db(app) -> Iterator:
    """A database session inside a transaction that is rolled back after the test."""
    from morket.extensions import db as _db

    with app.app_context():
        connection = _db.engine.connect()
        outer = connection.begin()
        original = _db.session
        _db.session = _db._make_scoped_session(  # the documented way to rebind
            {"bind": connection, "join_transaction_mode": "create_savepoint", "class_": _ConnectionSession}
        )
        try:
            yield _db
        finally:
            _db.session.remove()
            _db.session = original
            outer.rollback()
            connection.close()


@pytest.fixture(autouse=True)
def _reset_redis(request, services: dict[str, str]):
    """Flush rate-limit and queue state between tests that use the app."""
    yield
    if "app" in request.fixturenames:
        import redis as redis_lib

        redis_lib.Redis.from_url(services["redis"]).flushdb()


class BrowserClient(FlaskClient):
    """A test client whose every request runs in its own app context, as in a real server.

    The ``db`` fixture keeps one app context open for the whole test and Flask would reuse it
    for requests; flask-login and flask-wtf cache the user and CSRF token in ``g`` there, so two
    plain clients would share one browser's login. A fresh context per request keeps them apart.
    """

    def open(self, *args, **kwargs):
        from morket.extensions import db as _db

        outer = has_app_context()
        if outer:
            _db.session.flush()  # what the test set up is in the database before the "user" acts
        # Buffered: a streamed body is read while the request's own context is still active.
        kwargs.setdefault("buffered", True)
        with self.application.app_context():
            resp = super().open(*args, **kwargs)
        if outer:
            _db.session.expire_all()  # the request wrote through its own session: reload
        return resp


@pytest.fixture
def client(app, db) -> BrowserClient:
    """A browser-like client on the test's rolled-back transaction."""
    return BrowserClient(app, app.response_class, use_cookies=True)


@pytest.fixture
def new_client(app, db):
    """Return a factory of further clients, each with its own cookies (another browser)."""
    return lambda: BrowserClient(app, app.response_class, use_cookies=True)


@pytest.fixture
def query_budget(db):
    """Fail the test when the code under it runs more SQL statements than allowed.

    Usage: ``with query_budget(5): client.get(...)``.
    """
    from contextlib import contextmanager

    @contextmanager
    def budget(limit: int):
        statements: list[str] = []

        def _count(conn, cursor, statement, *args):
            if not statement.lstrip().upper().startswith(("SAVEPOINT", "RELEASE", "ROLLBACK TO")):
                statements.append(statement)

        engine = db.engine
        event.listen(engine, "before_cursor_execute", _count)
        try:
            yield statements
        finally:
            event.remove(engine, "before_cursor_execute", _count)
        assert len(statements) <= limit, f"{len(statements)} queries > budget {limit}:\n" + "\n".join(statements)

    return budget


@pytest.fixture
def run_jobs(app, services):
    """Run every queued RQ job in this process (burst), as a worker would; return the count."""
    from redis import Redis
    from rq import Queue, SimpleWorker

    from morket.core.jobs import QUEUES, relay_outbox

    def _run() -> int:
        with app.app_context():
            relay_outbox()
            conn = Redis.from_url(services["redis"])
            queues = [Queue(name, connection=conn) for name in QUEUES]
            waiting = sum(q.count for q in queues)
            SimpleWorker(queues, connection=conn).work(burst=True, with_scheduler=False)
            conn.close()
            return waiting

    return _run


def shared_corpus(*parts: str) -> Path:
    """Return a path under ../shared/corpora, skipping the test with a clear message if absent."""
    path = SHARED.joinpath("corpora", *parts)
    if not path.exists():
        pytest.skip(f"shared corpus folder {path} is absent; these tests read ../shared/corpora/")
    return path


@pytest.fixture(scope="session")
def sandbox_server():
    """The provider sandboxes (Hunter, Apollo, Clearbit) on a free loopback port for the session."""
    from tests.support.sandbox import PROVIDERS, SandboxServer

    server = SandboxServer().start()
    server.providers = PROVIDERS
    yield server
    server.stop()


@pytest.fixture(scope="session")
def sandbox(app, sandbox_server):
    """The sandboxes, with the test app pointed at them and given platform keys ("sandbox-<p>-key").

    Session-wide: call ``sandbox.reset()`` (or ``configure``) in a test that changes its behaviour.
    """
    settings = app.config["MORKET"]
    for name in sandbox_server.providers:
        settings[f"{name.upper()}_URL"] = sandbox_server.url(name)
        settings[f"{name.upper()}_API_KEY"] = f"sandbox-{name}-key"
    return sandbox_server
