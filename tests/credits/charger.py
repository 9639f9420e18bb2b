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
    """Charge 1 credit per key, each in its own transaction, after every charger is connected."""
    app = Flask(f"charger-{worker}")
    app.config.update(SQLALCHEMY_DATABASE_URI=url, MORKET={"WELCOME_CREDITS": 0})
    db.init_app(app)
    outcomes: list[tuple[str, str, int | None]] = []
    with app.app_context():
        backend = db.session.scalar(text("SELECT pg_backend_pid()"))
        db.session.commit()  # the connection stays open in the pool for the charges
        barrier.wait(timeout=300)
        for key in keys:
            try:
                entry = service.charge(
                    workspace_id, 1, idempotency_key=key, provider="hunter", operation="hunter.email_verifier"
                )
                db.session.commit()
                outcomes.append((key, "replay" if entry is None else "charged", None if entry is None else entry.id))
            except service.InsufficientCredits:
                db.session.rollback()
                outcomes.append((key, "refused", None))
            except Exception as exc:  # noqa: BLE001 - reported to the test, which fails on it
                db.session.rollback()
                outcomes.append((key, f"error: {type(exc).__name__}", None))
        db.engine.dispose()
    results.put((worker, backend, outcomes))
