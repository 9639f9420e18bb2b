"""Rate-limit keys and the named limits, defined once."""

from __future__ import annotations

from flask import g, request

AUTH_LIMIT = "5/minute"
ADMIN_LIMIT = "10/minute"
GENERAL_LIMIT = "100/minute"
GRID_LIMIT = "1200/minute"


def client_ip() -> str:
    """Return the caller's address (the proxy in front sets REMOTE_ADDR via ProxyFix)."""
    return request.remote_addr or "unknown"


def rate_limit_key() -> str:
    """Key limits by the authenticated principal when there is one, else by IP."""
    principal = getattr(g, "rate_limit_principal", None)
    if principal:
        return principal
    from flask_login import current_user

    if current_user and current_user.is_authenticated:
        return f"user:{current_user.id}"
    return f"ip:{client_ip()}"
