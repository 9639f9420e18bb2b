"""Workspace scoping for pages: load the workspace by slug for the current member or 404."""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any

from flask import abort, g
from flask_login import current_user, login_required
from sqlalchemy import select

from morket.core.logging import log_security_event
from morket.core.roles import can
from morket.extensions import db


def load_membership(slug: str, user_id: int):
    """Return the (workspace, membership) of ``user_id`` in the workspace ``slug``, or None."""
    from morket.workspaces.models import Membership, Workspace

    row = db.session.execute(
        select(Workspace, Membership)
        .join(Membership, Membership.workspace_id == Workspace.id)
        .where(Workspace.slug == slug, Membership.user_id == user_id)
    ).first()
    return (row[0], row[1]) if row else None


def workspace_page(permission: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Guard a ``/w/<slug>/...`` view: members only (404 to others), then ``permission`` (403).

    The view receives ``workspace`` and ``membership`` instead of ``slug``.
    """

    def decorator(view: Callable[..., Any]) -> Callable[..., Any]:
        @wraps(view)
        @login_required
        def wrapper(slug: str, **kwargs: Any) -> Any:
            found = load_membership(slug, current_user.id)
            if found is None:
                abort(404)
            workspace, membership = found
            g.log_workspace_id = workspace.id
            g.workspace = workspace
            g.membership = membership
            if not can(membership.role, permission):
                log_security_event(
                    "authorization_refused", user_id=current_user.id, workspace_id=workspace.id, permission=permission
                )
                abort(403)
            return view(workspace=workspace, membership=membership, **kwargs)

        wrapper.morket_permission = permission  # type: ignore[attr-defined]
        return wrapper

    return decorator
