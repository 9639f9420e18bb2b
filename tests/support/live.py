"""A live Morket server on a loopback port and a headless Chromium page, for browser tests.

The ``live_server`` and ``browser_page`` fixtures (tests/browser/conftest.py) are built on these;
a test that needs its own server settings (environment, allowlists) uses them directly.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from werkzeug.serving import make_server

CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def chromium_path() -> str:
    """Debian's Chromium (or MORKET_CHROMIUM_PATH); skips the test when there is none."""
    path = os.environ.get("MORKET_CHROMIUM_PATH", "/usr/bin/chromium")
    if not Path(path).exists():
        pytest.skip(f"no Chromium at {path}; set MORKET_CHROMIUM_PATH to run the browser tests")
    return path


@contextmanager
def serve_app(database_url: str, redis_url: str, smtp_server, *, name: str = "morket-live-server") -> Iterator[str]:
    """Serve a fresh Morket app on 127.0.0.1:<free port> in a thread; yield its base URL, then stop it."""
    from morket import create_app
    from morket.extensions import db

    live = create_app(
        {
            "SQLALCHEMY_DATABASE_URI": database_url,
            "REDIS_URL": redis_url,
            "RATELIMIT_STORAGE_URI": redis_url,
            "TESTING": True,
            # LIVE_STREAMS: one threaded server serves a whole module of browser tests; a stream
            # whose page is gone holds its slot until the next heartbeat, so pages opened one
            # after another would meet the production bound of 4 and get the designed 503.
            "MORKET": {
                "ENV": "test",
                "SMTP_HOST": smtp_server.host,
                "SMTP_PORT": smtp_server.port,
                "LIVE_STREAMS": 64,
            },
        }
    )
    server = make_server("127.0.0.1", 0, live, threaded=True)
    base_url = f"http://127.0.0.1:{server.server_port}"
    live.config["MORKET"]["BASE_URL"] = base_url
    thread = threading.Thread(target=server.serve_forever, name=name, daemon=True)
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


@contextmanager
def chromium_page(*, width: int = 1280, height: int = 860):
    """A headless Chromium page that collects problems in ``page.problems``: console errors (a CSP
    violation, a failed script) and responses of 400 or more other than the browser's favicon probe."""
    from playwright.sync_api import sync_playwright

    executable = chromium_path()
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        context = browser.new_context(viewport={"width": width, "height": height})
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
