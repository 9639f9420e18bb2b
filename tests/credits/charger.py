"""A charger process for the concurrency tests: its own app, engine and connection, like a worker.

Imported by the forkserver before it forks (see test_concurrency.py), so each child starts with the
modules loaded and only opens its own database connection.
"""

from __future__ import annotations

from typing import Any

from flask import Flask
from sqlalchemy import text

import morket.accounts.models
import morket.workspaces.models  # noqa: F401 - the ledger's foreign keys name these tables
from morket.credits import service
from morket.extensions import db


def charge_keys(url: str, workspace_id: int, worker: int, keys: list[str], barrier: Any, results: Any) -> None:
    """Charge 1 credit per key, each in its own transaction, after every charger is connected.

    Always reports back, even when it cannot connect, so the test fails with the reason instead of
    waiting for a result that never comes.
    """
    outcomes: list[tuple[str, str, int | None]] = []
    backend = None
    try:
        app = Flask(f"charger-{worker}")
        app.config.update(SQLALCHEMY_DATABASE_URI=url)
        db.init_app(app)
        with app.app_context():
            # Connect before the barrier; the pool hands this same connection to every charge below.
            backend = db.session.scalar(text("SELECT pg_backend_pid()"))
            db.session.commit()
            barrier.wait(timeout=300)
            for key in keys:
                outcomes.append(_charge_one(workspace_id, key))
            db.engine.dispose()
    except Exception as exc:  # noqa: BLE001 - reported to the test, which fails on it
        outcomes.append(("*", f"error: {type(exc).__name__}: {exc}", None))
        barrier.abort()
    results.put((worker, backend, outcomes))


def _charge_one(workspace_id: int, key: str) -> tuple[str, str, int | None]:
    try:
        entry = service.charge(
            workspace_id, 1, idempotency_key=key, provider="hunter", operation="hunter.email_verifier"
        )
        db.session.commit()
    except service.InsufficientCredits:
        db.session.rollback()
        return key, "refused", None
    except Exception as exc:  # noqa: BLE001 - reported to the test, which fails on it
        db.session.rollback()
        return key, f"error: {type(exc).__name__}", None
    return key, "replay" if entry is None else "charged", None if entry is None else entry.id
