"""Browser fixtures: a live Morket server on a loopback port, and Debian's Chromium through Playwright.

The server runs in a thread with its own connections, so it cannot see the savepoint of the ``db``
fixture: these tests work on committed data and truncate what they touched afterwards.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from werkzeug.serving import make_server

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
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def _chromium_path() -> str:
    path = os.environ.get("MORKET_CHROMIUM_PATH", "/usr/bin/chromium")
    if not Path(path).exists():
        pytest.skip(f"no Chromium at {path}; set MORKET_CHROMIUM_PATH to run the browser tests")
    return path


@pytest.fixture
def live_server(app, database_url: str, services: dict[str, str], smtp_server) -> Iterator[str]:
    """Serve a fresh Morket app on 127.0.0.1:<free port>; yield its base URL, then truncate what it wrote."""
    from morket import create_app
    from morket.extensions import db

    live = create_app(
        {
            "SQLALCHEMY_DATABASE_URI": database_url,
            "REDIS_URL": services["redis"],
            "RATELIMIT_STORAGE_URI": services["redis"],
            "TESTING": True,
            "MORKET": {"ENV": "test", "SMTP_HOST": smtp_server.host, "SMTP_PORT": smtp_server.port},
        }
    )
    server = make_server("127.0.0.1", 0, live, threaded=True)
    base_url = f"http://127.0.0.1:{server.server_port}"
    live.config["MORKET"]["BASE_URL"] = base_url
    thread = threading.Thread(target=server.serve_forever, name="morket-live-server", daemon=True)
    thread.start()
    try:
        yield base_url
    finally:
        server.shutdown()
        thread.join(10)
        server.server_close()
        with live.app_context():
            db.engine.dispose()
        live.extensions["morket_redis"].close()
        engine = create_engine(database_url)
        with engine.begin() as conn:
            conn.execute(text(f"TRUNCATE {', '.join(TOUCHED_TABLES)} CASCADE"))
        engine.dispose()
        smtp_server.clear()


@pytest.fixture
def browser_page(tmp_path: Path):
    """A headless Chromium page that collects problems: console errors (a CSP violation, a failed script)
    and responses of 400 or more other than the browser's own favicon probe."""
    from playwright.sync_api import sync_playwright

    executable = _chromium_path()
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        context = browser.new_context(viewport={"width": 1280, "height": 860})
        page = context.new_page()
        page.set_default_timeout(10_000)
        page.problems = []

        def _on_console(msg):
            # A failed load is reported by _on_response with its URL; the console message has none.
            if msg.type == "error" and not msg.text.startswith("Failed to load resource"):
                page.problems.append(msg.text)

        def _on_response(resp):
            if resp.status >= 400 and not resp.url.endswith("/favicon.ico"):
                page.problems.append(f"{resp.status} {resp.url}")

        page.on("console", _on_console)
        page.on("response", _on_response)
        page.on("pageerror", lambda exc: page.problems.append(str(exc)))
        try:
            yield page
        finally:
            context.close()
            browser.close()


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
