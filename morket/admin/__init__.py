"""The platform admin console under /admin: invisible (404) to everyone but platform admins."""

from __future__ import annotations

from flask import Blueprint, Flask, abort, request
from flask_login import current_user

from morket.core.logging import log_security_event
from morket.core.ratelimit import ADMIN_LIMIT
from morket.extensions import csrf, limiter

bp = Blueprint("admin", __name__, url_prefix="/admin")

ADMIN_PREFIX = "/admin"


def is_platform_admin() -> bool:
    """Whether the current browser user is an active platform admin."""
    return bool(current_user and current_user.is_authenticated and current_user.is_platform_admin)


def _is_admin_path() -> bool:
    return request.path == ADMIN_PREFIX or request.path.startswith(ADMIN_PREFIX + "/")


def _hide_admin() -> None:
    """Answer 404 to non-admins on every /admin path, before CSRF, method or login checks can tell it exists."""
    if not _is_admin_path():
        return
    if not is_platform_admin():
        if current_user and current_user.is_authenticated:
            log_security_event("admin_refused", user_id=current_user.id, path=request.path)
        abort(404)
    csrf.protect()


# Declared once at import (not per app) so that several apps in one process do not stack the limit.
# CSRF is checked in _hide_admin, after the admin check, so that a refused POST looks like any 404.
csrf.exempt(bp)
# Per user (rate_limit_key); non-admins are exempt so that their 404 looks like any missing page.
limiter.limit(ADMIN_LIMIT, exempt_when=lambda: not is_platform_admin())(bp)


def register(app: Flask) -> None:
    from morket.admin import views  # noqa: F401

    app.before_request(_hide_admin)
    app.register_blueprint(bp)
