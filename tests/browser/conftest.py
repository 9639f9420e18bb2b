"""Browser fixtures: a live Morket server on a loopback port, and Debian's Chromium through Playwright.

The server runs in a thread with its own connections, so it cannot see the savepoint of the ``db``
fixture: these tests work on committed data and truncate what they touched afterwards.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from tests.support.live import chromium_page, serve_app

# Every table a sign-up, workspace and invitation flow writes to; CASCADE covers their dependants.
TOUCHED_TABLES = (
    "users",
    "user_tokens",
    "login_failures",
    "refresh_tokens",
    "workspaces",
    "memberships",
    "invitations",
    "api_keys",
    "mail_messages",
    "outbox",
    "audit_events",
)


@pytest.fixture
def live_server(app, database_url: str, services: dict[str, str], smtp_server) -> Iterator[str]:
    """Serve a fresh Morket app on 127.0.0.1:<free port>; yield its base URL, then truncate what it wrote."""
    try:
        with serve_app(database_url, services["redis"], smtp_server) as base_url:
            yield base_url
    finally:
        engine = create_engine(database_url)
        with engine.begin() as conn:
            conn.execute(text(f"TRUNCATE {', '.join(TOUCHED_TABLES)} CASCADE"))
        engine.dispose()
        smtp_server.clear()


@pytest.fixture
def browser_page(tmp_path: Path):
    """A headless Chromium page that collects problems: console errors (a CSP violation, a failed script)
    and responses of 400 or more other than the browser's own favicon probe."""
    with chromium_page() as page:
        yield page


def committed_owner(*, email: str, name: str, slug: str, workspace_name: str, password: str):
    """Add a verified user who owns a new workspace to the current session; the caller commits.

    Browser tests run against a live server, so their data must be committed (and is truncated
    by ``live_server`` afterwards). Call inside an app context; returns (workspace, user).
    """
    from morket.accounts.models import User
    from morket.core.db import utcnow
    from morket.core.security import hash_password
    from morket.extensions import db
    from morket.workspaces.models import Membership, Workspace

    user = User(email=email, name=name, password_hash=hash_password(password), email_verified_at=utcnow())
    workspace = Workspace(slug=slug, name=workspace_name)
    db.session.add_all([user, workspace])
    db.session.flush()
    db.session.add(Membership(workspace_id=workspace.id, user_id=user.id, role="owner"))
    return workspace, user
