"""Structured JSON logs with request id, user and workspace; secrets and URL query strings redacted."""

from __future__ import annotations

import json
import logging
import re
import sys
from datetime import UTC, datetime
from typing import Any

from flask import g, has_request_context, request

SECRET_KEYS = re.compile(
    r"(pass(word)?|secret|token|api[_-]?key|authorization|cookie|csrf|refresh|access|smtp_password)",
    re.I,
)
_VALUE = r"(?:\"[^\"]*\"|'[^']*'|[^\s\"'&,;]+)"
# Each pattern keeps group 1 (the label) and replaces the rest with REDACTED. No word boundaries:
# a secret glued to other text must still go.
_INLINE_SECRETS = (
    re.compile(r"(?i)((?:proxy-)?authorization[\"']?\s*[=:]\s*[\"']?(?:(?:basic|bearer|digest|token)\s+)?)" + _VALUE),
    re.compile(r"(?i)(bearer\s+)[A-Za-z0-9._~+/=-]+"),
    re.compile(r"(?i)((?:password|passwd|pwd|secret|token|api[_-]?key)[\"']?\s*[=:]\s*)" + _VALUE),
    re.compile(r"()mk_(?:live|test)_[A-Za-z0-9_-]+"),
    re.compile(r"()eyJ[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*"),
    re.compile(r"(://[^/\s:@]+:)[^/\s@]+(?=@)"),
)
REDACTED = "[redacted]"
# A URL's query string: provider calls carry people's names, emails and keys there (Hunter's
# email finder, for one), so log lines keep a URL's path but never its query.
_URL_QUERY = re.compile(r"((?:https?|wss?)://[^\s?#\"'<>]+)\?[^\s#\"'<>]*")
# Client libraries that log every request's full URL (httpx at INFO, httpcore and urllib3 at DEBUG).
URL_LOGGERS = ("httpx", "httpcore", "urllib3", "hpack")


def redact(value: Any) -> Any:
    """Return ``value`` with secret-looking keys and inline tokens replaced."""
    if isinstance(value, dict):
        return {k: (REDACTED if SECRET_KEYS.search(str(k)) else redact(v)) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [redact(v) for v in value]
    if isinstance(value, str):
        for pattern in _INLINE_SECRETS:
            value = pattern.sub(lambda m: m.group(1) + REDACTED, value)
        return value
    return value


def redact_for_log(value: Any) -> Any:
    """``redact``, and every URL's query string replaced too (for log lines, not stored data)."""
    value = redact(value)
    if isinstance(value, dict):
        return {k: redact_for_log(v) for k, v in value.items()}
    if isinstance(value, list):
        return [redact_for_log(v) for v in value]
    if isinstance(value, str):
        return _URL_QUERY.sub(lambda m: m.group(1) + "?" + REDACTED, value)
    return value


def _log_user_id() -> int | None:
    # Only a user flask-login has already loaded: a log line must never trigger a query.
    explicit = getattr(g, "log_user_id", None)
    if explicit is not None:
        return explicit
    user = getattr(g, "_login_user", None)
    return user.id if user is not None and user.is_authenticated else None


class JsonFormatter(logging.Formatter):
    """Format a record as one JSON line with the request's id, user and workspace."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": datetime.now(UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "msg": redact_for_log(record.getMessage()),
        }
        if has_request_context():
            entry["request_id"] = getattr(g, "request_id", None)
            entry["user_id"] = _log_user_id()
            entry["workspace_id"] = getattr(g, "log_workspace_id", None)
            entry["path"] = request.path
        extra = getattr(record, "data", None)
        if extra:
            entry["data"] = redact_for_log(extra)
        if record.exc_info:
            entry["exc"] = redact_for_log(self.formatException(record.exc_info))
        return json.dumps(entry, default=str)


def configure_logging(level: str) -> None:
    """Send every log record to stderr as one JSON line."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    logging.getLogger("werkzeug").setLevel("WARNING")
    logging.getLogger("alembic.runtime.plugins").setLevel("WARNING")
    # Whatever LOG_LEVEL says: their request lines name every URL with its query string.
    for name in URL_LOGGERS:
        logging.getLogger(name).setLevel("WARNING")


security_log = logging.getLogger("morket.security")


def log_security_event(event: str, **data: Any) -> None:
    """Record a security event (failed login, refused authorisation, rate-limit hit)."""
    security_log.warning(event, extra={"data": {"event": event, **data}})
