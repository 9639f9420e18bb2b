"""Helpers every benchmark shares: logging to stderr, the bench database, the bench workspace."""

from __future__ import annotations

import os
import sys

from sqlalchemy import create_engine, select, text
from sqlalchemy.engine import make_url


def log(message: str) -> None:
    """Write progress to stderr so that stdout ends with the one JSON line."""
    print(message, file=sys.stderr, flush=True)


def ensure_database(url: str) -> None:
    """Create the bench database named in ``url`` when it does not exist yet."""
    parsed = make_url(url)
    admin = create_engine(
        parsed.set(drivername="postgresql+psycopg", database="postgres").render_as_string(hide_password=False),
        isolation_level="AUTOCOMMIT",
    )
    with admin.connect() as conn:
        exists = conn.execute(text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": parsed.database}).scalar()
        if not exists:
            log(f"creating database {parsed.database}")
            conn.execute(text(f'CREATE DATABASE "{parsed.database}"'))
    admin.dispose()


def bench_workspace(slug: str, name: str):
    """Return (workspace, owner) for a benchmark, created once and reused by later runs."""
    from morket.accounts.models import User
    from morket.extensions import db
    from morket.workspaces.models import Membership, Workspace

    email = f"{slug}@morket.invalid"
    workspace = db.session.scalars(select(Workspace).where(Workspace.slug == slug)).one_or_none()
    user = db.session.scalars(select(User).where(User.email == email)).one_or_none()
    if workspace is None or user is None:
        user = User(email=email, name="Bench", password_hash="!")  # noqa: S106 - matches no password
        workspace = Workspace(slug=slug, name=name)
        db.session.add_all([user, workspace])
        db.session.flush()
        db.session.add(Membership(workspace_id=workspace.id, user_id=user.id, role="owner"))
        db.session.commit()
    return workspace, user


def migrated_app(default_url: str):
    """Return (app, database url) for a benchmark: its database created if missing and migrated to head.

    ``MORKET_BENCH_DATABASE_URL`` and ``MORKET_REDIS_URL`` override the defaults.
    """
    url = os.environ.get("MORKET_BENCH_DATABASE_URL", default_url)
    ensure_database(url)
    os.environ.setdefault("MORKET_ENV", "development")
    from flask_migrate import upgrade

    from morket import create_app

    redis_url = os.environ.get("MORKET_REDIS_URL") or "redis://127.0.0.1:6379/0"
    app = create_app({"SQLALCHEMY_DATABASE_URI": url, "REDIS_URL": redis_url, "TESTING": True})
    with app.app_context():
        upgrade(directory=os.path.join(app.root_path, "..", "migrations"))
    return app, url
