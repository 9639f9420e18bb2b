"""One threaded HTTP server standing in for every external provider, plus a control API.

Each provider lives under its own prefix (``/hunter``, ``/apollo``, ``/clearbit``) and answers
as the real API does (see each module). Per provider, ``POST /_sandbox/config`` sets the
latency, an error rate (every n-th request fails with ``fail_status``, deterministically), a
token-bucket rate limit (``rate`` per second, ``burst``; over it: 429 with Retry-After), a
quota of answered requests, Clearbit's asynchronous mode, and ``invalid_emails``: the share of
people for whom an email finder answers an outdated address that the verifier rejects (chosen
per person and provider by ``data.outdated``, so a test can work out which). ``GET
/_sandbox/log`` lists every request received with its query parameters (never the key): the
independent record tests compare with; ``POST /_sandbox/reset`` clears the log, counters and
settings.

Valid keys start ``sandbox-`` or ``sk-test-``; anything else is refused with a 401.
"""

from __future__ import annotations

import io
import json
import math
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, fields
from typing import Any

from werkzeug.serving import WSGIRequestHandler
from werkzeug.wrappers import Request, Response

VALID_KEY_PREFIXES = ("sandbox-", "sk-test-")
QUOTA_RETRY_AFTER = 3600
LOG_LIMIT = 200_000


def key_is_valid(key: str | None) -> bool:
    return bool(key) and key.startswith(VALID_KEY_PREFIXES)


def key_hint(key: str | None) -> str | None:
    """The last four characters of a key: enough to tell keys apart in the log, never the key."""
    return f"…{key[-4:]}" if key else None


def json_response(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(json.dumps(body), status=status, headers=headers or {}, mimetype="application/json")


@dataclass
class Settings:
    """How one provider's sandbox behaves (the control API's fields)."""

    latency_ms: int = 0
    error_rate: float = 0.0
    fail_status: int = 500
    rate: float = 50.0
    burst: float = 50.0
    quota: int | None = None
    async_: bool = False
    invalid_emails: float = 0.0

    def update(self, values: dict[str, Any]) -> None:
        names = {f.name for f in fields(self)}
        for key, value in values.items():
            name = "async_" if key == "async" else key
            if name not in names:
                raise ValueError(f"unknown setting {key!r}")
            if name == "quota":
                value = None if value is None else int(value)
            elif name == "async_":
                value = bool(value)
            elif name in ("latency_ms", "fail_status"):
                value = int(value)
            else:
                value = float(value)
            setattr(self, name, value)
        if not 0 <= self.error_rate <= 1 or self.rate <= 0 or self.burst < 1 or self.latency_ms < 0:
            raise ValueError("error_rate must be 0..1, rate > 0, burst >= 1, latency_ms >= 0")
        if not 0 <= self.invalid_emails <= 1:
            raise ValueError("invalid_emails must be 0..1")

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["async"] = data.pop("async_")
        return data


class Bucket:
    """A token bucket; ``take`` returns 0 when a token was taken, else the seconds to wait."""

    def __init__(self, rate: float, burst: float) -> None:
        self.rate, self.burst = rate, burst
        self.tokens = burst
        self.updated = time.monotonic()
        self.lock = threading.Lock()

    def take(self) -> float:
        with self.lock:
            now = time.monotonic()
            self.tokens = min(self.burst, self.tokens + (now - self.updated) * self.rate)
            self.updated = now
            if self.tokens >= 1:
                self.tokens -= 1
                return 0.0
            return (1 - self.tokens) / self.rate


@dataclass
class Call:
    """What a provider module needs to answer one request."""

    provider: str
    operation: str
    request: Request
    key: str
    settings: Settings
    sandbox: SandboxApp


class ProviderSandbox:
    """What a provider module implements (see hunter.py, apollo.py, clearbit.py)."""

    name: str = ""
    routes: dict[tuple[str, str], str] = {}

    def key_of(self, request: Request) -> str | None:
        raise NotImplementedError

    def operation_for(self, method: str, route: str) -> str | None:
        """The operation a request names, or None; a sandbox with path parameters overrides this."""
        return self.routes.get((method, route))

    def authenticate(self, operation: str, key: str | None) -> Response | None:
        """None when the request may proceed, else the refusal (a sandbox with OAuth tokens overrides this)."""
        if key_is_valid(key):
            return None
        return self.error(401, "authentication_failed", "No valid API key was provided")

    def reset(self) -> None:
        """Forget the sandbox's own state (records, tokens); called by the control API's reset."""

    def admin(self, action: str, request: Request) -> Response | None:
        """Answer ``/_sandbox/<provider>/<action>`` (state and settings of its own), or None: no such action."""
        return None

    def error(self, status: int, code: str, message: str, headers: dict[str, str] | None = None) -> Response:
        raise NotImplementedError

    def handle(self, call: Call) -> Response:
        raise NotImplementedError

    def rate_limited(self, wait: float) -> Response:
        seconds = max(1, math.ceil(wait))
        return self.error(429, "rate_limited", "Too many requests; slow down", {"Retry-After": str(seconds)})

    def quota_exceeded(self) -> Response:
        return self.error(
            429, "usage_limit", "You have reached your usage limit", {"Retry-After": str(QUOTA_RETRY_AFTER)}
        )

    def failure(self, status: int) -> Response:
        return self.error(status, "server_error", "Something went wrong on our end (sandbox failure)")


class SandboxApp:
    """The WSGI application: routing, the control API and the behaviour knobs."""

    def __init__(self, providers: Iterable[ProviderSandbox]) -> None:
        self.providers = {p.name: p for p in providers}
        self.lock = threading.Lock()
        self.reset()

    # -- state ----------------------------------------------------------------------------

    def reset(self) -> None:
        with self.lock:
            self.settings = {name: Settings() for name in self.providers}
            self.buckets = {name: Bucket(s.rate, s.burst) for name, s in self.settings.items()}
            self.counts = dict.fromkeys(self.providers, 0)
            self.used = dict.fromkeys(self.providers, 0)
            # Bounded, so a sandbox left running under make run does not grow without end.
            self.entries: deque[dict[str, Any]] = deque(maxlen=LOG_LIMIT)
            # A request still in flight across a reset (a slow one whose caller gave up) must
            # not land in the fresh log: each request remembers the generation it started in.
            self.generation = getattr(self, "generation", 0) + 1
        for provider in self.providers.values():
            provider.reset()

    def configure(self, provider: str, values: dict[str, Any]) -> Settings:
        if provider not in self.providers:
            raise ValueError(f"unknown provider {provider!r}")
        with self.lock:
            settings = self.settings[provider]
            trial = Settings(**asdict(settings))
            trial.update(values)
            self.settings[provider] = trial
            self.buckets[provider] = Bucket(trial.rate, trial.burst)
            if "quota" in values:
                self.used[provider] = 0
            return trial

    def record(
        self,
        provider: str,
        operation: str,
        path: str,
        key: str | None,
        status: int,
        generation: int | None = None,
        params: dict[str, str] | None = None,
    ) -> None:
        entry = {
            "provider": provider,
            "operation": operation,
            "path": path,
            "key_hint": key_hint(key),
            "status": status,
            "params": params or {},
            "at": time.time(),
        }
        with self.lock:
            if generation is None or generation == self.generation:
                self.entries.append(entry)

    def _should_fail(self, provider: str, rate: float) -> bool:
        # Every request whose count crosses a multiple of 1/rate fails: exact and repeatable.
        with self.lock:
            n = self.counts[provider]
            self.counts[provider] = n + 1
        return rate > 0 and math.floor((n + 1) * rate) > math.floor(n * rate)

    def _within_quota(self, provider: str, quota: int | None) -> bool:
        with self.lock:
            if quota is not None and self.used[provider] >= quota:
                return False
            self.used[provider] += 1
            return True

    # -- WSGI -----------------------------------------------------------------------------

    def __call__(self, environ: dict[str, Any], start_response: Callable) -> Iterable[bytes]:
        request = Request(environ)
        request.environ["sandbox.generation"] = self.generation
        try:
            response = self.dispatch(request)
        except Exception as exc:  # noqa: BLE001 - a sandbox bug answers 500 like a real server would
            response = json_response({"error": f"sandbox error: {type(exc).__name__}"}, 500)
        return response(environ, start_response)

    def dispatch(self, request: Request) -> Response:
        path = request.path
        if path.startswith("/_sandbox/"):
            return self.control(request)
        prefix, _, rest = path.lstrip("/").partition("/")
        sandbox = self.providers.get(prefix)
        if sandbox is None:
            return json_response({"error": "no such sandbox"}, 404)
        route = "/" + rest
        operation = sandbox.operation_for(request.method, route)
        key = sandbox.key_of(request)
        if operation is None:
            response = sandbox.error(404, "not_found", f"no route {request.method} {route}")
            self.record(prefix, "unknown", route, key, response.status_code, request.environ["sandbox.generation"])
            return response
        settings = self.settings[prefix]
        response = self.answer(sandbox, operation, request, key, settings)
        # The query without its key (Hunter sends the key as ``api_key``): what was asked about.
        params = {k: v for k, v in request.args.items() if k != "api_key"}
        self.record(prefix, operation, route, key, response.status_code, request.environ["sandbox.generation"], params)
        return response

    def answer(
        self, sandbox: ProviderSandbox, operation: str, request: Request, key: str | None, settings: Settings
    ) -> Response:
        refusal = sandbox.authenticate(operation, key)
        if refusal is not None:
            if settings.latency_ms:
                time.sleep(settings.latency_ms / 1000)
            return refusal
        wait = self.buckets[sandbox.name].take()
        if wait > 0:
            return sandbox.rate_limited(wait)
        if not self._within_quota(sandbox.name, settings.quota):
            return sandbox.quota_exceeded()
        call = Call(sandbox.name, operation, request, key, settings, self)
        deferred = settings.async_ and bool(getattr(sandbox, "defers", lambda c: False)(call))
        if settings.latency_ms and not deferred:
            time.sleep(settings.latency_ms / 1000)
        if self._should_fail(sandbox.name, settings.error_rate):
            return sandbox.failure(settings.fail_status)
        return sandbox.handle(call)

    def control(self, request: Request) -> Response:
        if request.path == "/_sandbox/log" and request.method == "GET":
            with self.lock:
                entries = list(self.entries)
            provider = request.args.get("provider")
            if provider:
                entries = [e for e in entries if e["provider"] == provider]
            return json_response(entries)
        if request.path == "/_sandbox/reset" and request.method == "POST":
            self.reset()
            return json_response({"ok": True})
        if request.path == "/_sandbox/config" and request.method == "POST":
            body = request.get_json(silent=True)
            if not isinstance(body, dict) or not isinstance(body.get("provider"), str):
                return json_response({"error": "send JSON with a provider and settings"}, 400)
            values = {k: v for k, v in body.items() if k != "provider"}
            try:
                settings = self.configure(body["provider"], values)
            except (ValueError, TypeError) as exc:
                return json_response({"error": str(exc)}, 400)
            return json_response({"provider": body["provider"], **settings.as_dict()})
        if request.path == "/_sandbox/config" and request.method == "GET":
            with self.lock:
                return json_response({name: s.as_dict() for name, s in self.settings.items()})
        name, _, action = request.path.removeprefix("/_sandbox/").partition("/")
        if name in self.providers and action:
            answer = self.providers[name].admin(action, request)
            if answer is not None:
                return answer
        return json_response({"error": "no such control route"}, 404)


class KeepAliveHandler(WSGIRequestHandler):
    """Keep HTTP/1.1 connections open between requests, as the real provider APIs do.

    Werkzeug's development server closes every connection because ``http.server`` cannot skip a
    body the application left unread before the next request line. The sandbox reads each body in
    full before the application runs (a ``Content-Length`` body; a chunked one or a client asking
    to close still closes), so the next request starts where this one ended."""

    timeout = 30  # an idle kept-alive connection gives its thread back after this many seconds
    # Headers and body leave in separate writes; with Nagle's algorithm on a kept-alive connection
    # the body would wait for the client's delayed ACK (about 40 ms a request).
    disable_nagle_algorithm = True

    def run_wsgi(self) -> None:
        self._keep_alive = (
            self.request_version == "HTTP/1.1"
            and "chunked" not in self.headers.get("Transfer-Encoding", "").lower()
            and self.headers.get("Connection", "").lower() != "close"
        )
        socket_file = self.rfile
        length = self.headers.get("Content-Length", "0")
        if self._keep_alive and length.isdigit():
            # The body, or nothing: werkzeug's drain after the response reads this, not the socket.
            self.rfile = io.BytesIO(socket_file.read(int(length)) if int(length) else b"")
        else:
            self._keep_alive = False  # a malformed length: answer and close, as before
        try:
            super().run_wsgi()
        finally:
            self.rfile = socket_file

    def send_header(self, keyword: str, value: str) -> None:
        if keyword.lower() == "connection" and value.lower() == "close" and getattr(self, "_keep_alive", False):
            return  # leave it open: http.server's loop reads the next request
        super().send_header(keyword, value)


class QuietHandler(KeepAliveHandler):
    """No access log line per request: the control API's log is the record, and printing slows us."""

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        return
