"""Structured JSON logs with request id, user and workspace, and secrets redacted."""

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
_INLINE_SECRETS = (
    re.compile(r"(?i)(bearer\s+)[A-Za-z0-9._~+/=-]+"),
    re.compile(r"(?i)((?:password|passwd|secret|token|api[_-]?key)[\"']?\s*[=:]\s*[\"']?)[^\s\"'&,;]+"),
    re.compile(r"\bmk_(live|test)_[A-Za-z0-9_-]+"),
    re.compile(r"\beyJ[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+"),
)
REDACTED = "[redacted]"


def redact(value: Any) -> Any:
    """Return ``value`` with secret-looking keys and inline tokens replaced."""
    if isinstance(value, dict):
        return {k: (REDACTED if SECRET_KEYS.search(str(k)) else redact(v)) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [redact(v) for v in value]
    if isinstance(value, str):
        for pattern in _INLINE_SECRETS:
            value = pattern.sub(lambda m: (m.group(1) if m.lastindex else "") + REDACTED, value)
        return value
    return value


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": datetime.now(UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "msg": redact(record.getMessage()),
        }
        if has_request_context():
            entry["request_id"] = getattr(g, "request_id", None)
            entry["user_id"] = getattr(g, "log_user_id", None)
            entry["workspace_id"] = getattr(g, "log_workspace_id", None)
            entry["path"] = request.path
        extra = getattr(record, "data", None)
        if extra:
            entry["data"] = redact(extra)
        if record.exc_info:
            entry["exc"] = redact(self.formatException(record.exc_info))
        return json.dumps(entry, default=str)


def configure_logging(level: str) -> None:
    """Send every log record to stderr as one JSON line."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    logging.getLogger("werkzeug").setLevel("WARNING")


security_log = logging.getLogger("morket.security")


def log_security_event(event: str, **data: Any) -> None:
    """Record a security event (failed login, refused authorisation, rate-limit hit)."""
    security_log.warning(event, extra={"data": {"event": event, **data}})
