"""The provider sandboxes on a free loopback port in a thread, and a webhook receiver for tests."""

from __future__ import annotations

import json
import threading
import time
from typing import Any

import httpx
from werkzeug.serving import BaseWSGIServer, make_server
from werkzeug.wrappers import Request, Response

from morket.providers.sandboxes import serve
from morket.providers.sandboxes.server import QuietHandler

PROVIDERS = ("apollo", "hunter", "clearbit")


class SandboxServer:
    """``start()``, then ``url("hunter")``, ``configure("hunter", rate=5)``, ``log()``, ``reset()``."""

    def __init__(self, host: str = "127.0.0.1") -> None:
        self.host = host
        self._server: BaseWSGIServer | None = None
        self._thread: threading.Thread | None = None
        self._control = httpx.Client(timeout=5)

    def start(self) -> SandboxServer:
        self._server = serve(self.host, 0)
        self._thread = threading.Thread(target=self._server.serve_forever, name="sandbox", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        self._control.close()

    @property
    def port(self) -> int:
        assert self._server is not None, "start() the sandbox first"
        return self._server.server_port

    @property
    def base(self) -> str:
        return f"http://{self.host}:{self.port}"

    def url(self, provider: str) -> str:
        """The base URL to set as MORKET_<PROVIDER>_URL."""
        return f"{self.base}/{provider}"

    def configure(self, provider: str, **settings: Any) -> dict[str, Any]:
        """Set latency_ms, error_rate, fail_status, rate, burst, quota or async (as ``async_``)."""
        if "async_" in settings:
            settings["async"] = settings.pop("async_")
        resp = self._control.post(f"{self.base}/_sandbox/config", json={"provider": provider, **settings})
        resp.raise_for_status()
        return resp.json()

    def log(self, provider: str | None = None) -> list[dict[str, Any]]:
        """Every request the sandbox received (the record to compare Morket's own with)."""
        params = {"provider": provider} if provider else None
        resp = self._control.get(f"{self.base}/_sandbox/log", params=params)
        resp.raise_for_status()
        return resp.json()

    def reset(self) -> None:
        self._control.post(f"{self.base}/_sandbox/reset").raise_for_status()


class WebhookSink:
    """A loopback HTTP server that keeps every POST it receives (body, headers) and answers 200."""

    def __init__(self, host: str = "127.0.0.1", status: int = 200) -> None:
        self.host = host
        self.status = status
        self.received: list[dict[str, Any]] = []
        self.lock = threading.Lock()
        self._server = make_server(host, 0, self._app, threaded=True, request_handler=QuietHandler)
        self._thread = threading.Thread(target=self._server.serve_forever, name="webhooks", daemon=True)

    def _app(self, environ: dict, start_response):  # WSGI
        request = Request(environ)
        body = request.get_data()
        with self.lock:
            self.received.append(
                {"path": request.full_path.rstrip("?"), "headers": dict(request.headers), "body": body}
            )
        return Response(json.dumps({"ok": True}), status=self.status, mimetype="application/json")(
            environ, start_response
        )

    def start(self) -> WebhookSink:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def url(self, path: str = "/hooks/clearbit") -> str:
        return f"http://{self.host}:{self._server.server_port}{path}"

    def wait_for(self, count: int = 1, timeout: float = 5.0) -> list[dict[str, Any]]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                if len(self.received) >= count:
                    return list(self.received)
            time.sleep(0.02)
        raise AssertionError(f"{count} webhook(s) expected within {timeout}s, got {len(self.received)}")
