"""Fixtures for the webhook tests: a loopback receiver, fast retry settings, a team of every role."""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from tests.credentials.conftest import Team, access_token, make_team  # noqa: F401 - the token fixture


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes

    @property
    def json(self) -> dict:
        return json.loads(self.body)


@dataclass
class Receiver:
    """A real HTTP server on 127.0.0.1 that records every request and answers from a script."""

    server: ThreadingHTTPServer
    received: list[Received] = field(default_factory=list)
    statuses: list[int] = field(default_factory=list)  # consumed one per request; then ``default``
    default: int = 200
    body: bytes = b'{"ok": true}'
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0  # seconds each answer waits
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/hooks"

    def answer(self) -> int:
        with self.lock:
            return self.statuses.pop(0) if self.statuses else self.default


def _handler(receiver: Receiver):
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            status = receiver.answer()
            if receiver.delay:
                time.sleep(receiver.delay)
            with receiver.lock:
                receiver.received.append(Received(self.path, {k.lower(): v for k, v in self.headers.items()}, body))
            self.send_response(status)
            for name, value in receiver.headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(receiver.body)))
            self.end_headers()
            self.wfile.write(receiver.body)

        def log_message(self, *args):
            pass

    return Handler


@pytest.fixture
def receiver():
    """A loopback receiver (http; the tests allow http to loopback through the development setting)."""
    box: dict = {}
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(_Proxy(box)))
    rec = Receiver(server)
    box["r"] = rec
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield rec
    server.shutdown()
    server.server_close()


class _Proxy:
    def __init__(self, box):
        self._box = box

    def __getattr__(self, name):
        return getattr(self._box["r"], name)


@pytest.fixture
def hook_settings(app, monkeypatch):
    """Fast retries, http to loopback allowed (as in development), a short rotation overlap."""
    settings = app.config["MORKET"]
    monkeypatch.setitem(settings, "WEBHOOK_ALLOW_HTTP_LOOPBACK", True)
    monkeypatch.setitem(settings, "WEBHOOK_RETRY_SCHEDULE", [0.01, 0.01, 0.01])
    monkeypatch.setitem(settings, "WEBHOOK_TIMEOUT", 5.0)
    return settings


@pytest.fixture
def team(db) -> Team:
    return make_team("Hook Co")


@pytest.fixture
def stranger(db) -> Team:
    return make_team("Other Hooks")
