"""Request plumbing installed on the app: request ids, security headers, CORS, errors, limits."""

from __future__ import annotations

import logging
import re
import time
import uuid
from urllib.parse import urlsplit

from flask import Flask, Response, g, render_template, request
from flask_limiter.errors import RateLimitExceeded
from flask_wtf.csrf import CSRFError
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge

from morket.core.api import api_error
from morket.core.errors import MorketError
from morket.core.htmx import wants_fragment
from morket.core.logging import log_security_event
from morket.core.metrics import observe_request
from morket.core.roles import can
from morket.core.text import plural

log = logging.getLogger("morket.web")

API_PREFIX = "/api/v1"
# An incoming X-Request-Id is echoed only when it is short and plain: it goes into headers and logs.
_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{8,64}")
NEXT_MAX = 2000

CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "font-src 'self'; connect-src 'self'; frame-ancestors 'none'; base-uri 'self'; "
    "form-action 'self'; object-src 'none'"
)
SECURITY_HEADERS = {
    "Strict-Transport-Security": "max-age=63072000; includeSubDomains",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "strict-origin-when-cross-origin",
    "Permissions-Policy": "camera=(), microphone=(), geolocation=(), payment=(), usb=()",
    "Content-Security-Policy": CSP,
    "Cross-Origin-Opener-Policy": "same-origin",
}

ERROR_TITLES = {
    400: ("Bad request", "The request could not be understood."),
    401: ("Please log in", "You need to log in to see this page."),
    403: ("Not allowed", "Your role in this workspace does not allow this."),
    404: ("Not found", "There is nothing here, or you do not have access to it."),
    410: ("No longer available", "This link has expired, or what it pointed to was removed."),
    405: ("Method not allowed", "This page does not accept that kind of request."),
    413: ("Too large", "What you sent is larger than Morket accepts."),
    422: ("Check your input", "Some of what you entered needs fixing."),
    423: ("Locked", "This account is temporarily locked."),
    429: ("Slow down", "Too many requests. Wait a moment and try again."),
    500: ("Something went wrong", "We logged the problem. Please try again."),
    503: ("Unavailable", "Morket cannot reach a service it needs. Try again shortly."),
}


def is_api_request() -> bool:
    return request.path.startswith(API_PREFIX)


def _error_response(status: int, code: str, message: str, fields=None, headers=None):
    if is_api_request():
        return api_error(code, message, status=status, fields=fields, headers=headers)
    title, text = ERROR_TITLES.get(status, ERROR_TITLES[500])
    # An htmx request gets the message as a fragment its page can place (or show as a toast); a 5xx
    # page draws the shell without the sidebar's queries, since the database may be what failed.
    body = render_template(
        "errors/_fragment.html" if wants_fragment() else "errors/error.html",
        status=status,
        title=title,
        text=message or text,
        retry_after=(headers or {}).get("Retry-After"),
        bare_shell=status >= 500,
    )
    resp = Response(body, status=status, mimetype="text/html")
    for key, value in (headers or {}).items():
        resp.headers[key] = value
    return resp


def rate_limited_response(exc: RateLimitExceeded) -> Response:
    """Answer a request refused by a rate limit: 429 with ``Retry-After``, as a page or the envelope.

    Public so that a blueprint that can say more (the login page, while an account is locked)
    can fall back to it.
    """
    log_security_event("rate_limited", path=request.path, limit=str(exc.limit.limit))
    retry_after = "60"
    try:
        from morket.extensions import limiter

        reset = limiter.current_limit.reset_at if limiter.current_limit else None
        if reset:
            retry_after = str(max(1, int(reset - time.time())))
    except Exception:  # the header is a courtesy; the 429 stands regardless
        log.warning("could not read the rate-limit reset time", exc_info=True)
    return _error_response(
        429, "rate_limited", "Too many requests. Try again shortly.", headers={"Retry-After": retry_after}
    )


def install_web(app: Flask) -> None:
    """Attach request ids, headers, CORS, size limits and error handlers to ``app``."""
    cors_origins = set(app.config["MORKET"]["CORS_ORIGINS"])
    max_json = app.config["MORKET"]["MAX_JSON_BYTES"]
    production = app.config["ENV_NAME"] == "production"
    app.add_template_filter(plural, "plural")
    # Every workspace page's tabs and buttons ask ``can(membership.role, ...)``, whichever domain renders it.
    app.add_template_global(can, "can")

    @app.before_request
    def _start() -> Response | None:
        g.request_started = time.perf_counter()
        incoming = request.headers.get("X-Request-Id", "")
        g.request_id = incoming if _REQUEST_ID.fullmatch(incoming) else uuid.uuid4().hex
        if request.method == "OPTIONS" and is_api_request():
            return Response(status=204)
        if request.is_json or request.mimetype == "application/json":
            length = request.content_length
            if length is not None and length > max_json:
                raise RequestEntityTooLarge()
            if length is None and request.method in {"POST", "PUT", "PATCH"}:
                # Chunked body with no length: read at most max_json + 1 bytes to decide.
                data = request.stream.read(max_json + 1)
                if len(data) > max_json:
                    raise RequestEntityTooLarge()
                request._cached_data = data  # let get_json() see what we read
        return None

    @app.after_request
    def _finish(resp: Response) -> Response:
        for key, value in SECURITY_HEADERS.items():
            resp.headers.setdefault(key, value)
        resp.headers["X-Request-Id"] = g.get("request_id", "")
        if is_api_request():
            origin = request.headers.get("Origin")
            if origin and origin in cors_origins:
                resp.headers["Access-Control-Allow-Origin"] = origin
                resp.headers["Access-Control-Allow-Headers"] = "Authorization, Content-Type, X-Request-Id"
                resp.headers["Access-Control-Allow-Methods"] = "GET, POST, PUT, PATCH, DELETE, OPTIONS"
                resp.headers["Access-Control-Max-Age"] = "600"
                resp.vary.add("Origin")
        if request.headers.get("HX-Request"):
            resp.vary.add("HX-Request")
        started = g.get("request_started")
        if started is not None:
            rule = request.url_rule.rule if request.url_rule else "unmatched"
            observe_request(request.method, rule, resp.status_code, time.perf_counter() - started)
        return resp

    @app.errorhandler(MorketError)
    def _domain_error(exc: MorketError):
        return _error_response(exc.status, exc.code, exc.message, exc.fields)

    @app.errorhandler(CSRFError)
    def _csrf_error(exc: CSRFError):
        log_security_event("csrf_failed", path=request.path)
        return _error_response(
            400, "csrf_failed", "The form expired or was not sent from Morket. Reload and try again."
        )

    app.register_error_handler(RateLimitExceeded, rate_limited_response)

    @app.errorhandler(HTTPException)
    def _http_error(exc: HTTPException):
        status = exc.code or 500
        code = {413: "payload_too_large", 404: "not_found", 405: "method_not_allowed"}.get(
            status, (exc.name or "error").lower().replace(" ", "_")
        )
        # Werkzeug's own descriptions ("You don't have the permission to access the requested
        # resource...") are not Morket's voice: only a description the code wrote itself is shown.
        own = exc.description if exc.description and exc.description != type(exc).description else ""
        message = (
            ERROR_TITLES.get(status, (exc.name, exc.description))[1] if production or status == 404 or not own else own
        )
        if status == 413:
            message = "The request body is larger than Morket accepts."
        return _error_response(status, code, message, headers={k: v for k, v in exc.get_headers() if k == "Allow"})

    @app.errorhandler(Exception)
    def _unhandled(exc: Exception):
        log.exception("unhandled error")
        return _error_response(500, "internal_error", ERROR_TITLES[500][1])


def safe_next(target: str | None) -> str | None:
    """Return ``target`` if it is a same-site relative path (``/...``), else None: where a page may
    send the browser back to (``?next=``) without becoming an open redirect."""
    if not target or len(target) > NEXT_MAX or not target.startswith("/") or target.startswith("//"):
        return None
    if "\\" in target or any(ord(ch) < 32 or ord(ch) == 127 for ch in target):
        return None
    parts = urlsplit(target)
    if parts.scheme or parts.netloc:
        return None
    return target
