"""Workspace scoping for pages: load the workspace by slug for the current member or 404."""

from __future__ import annotations

from collections.abc import Callable
from functools import cache, wraps
from typing import Any

from flask import abort, g, session
from flask_login import current_user, login_required
from sqlalchemy import Select, bindparam, select

from morket.core.logging import log_security_event
from morket.core.roles import can
from morket.extensions import db


@cache
def _membership_statement() -> Select:
    """The membership lookup, built once: every page request runs it, so it is not rebuilt each time."""
    from morket.workspaces.models import Membership, Workspace

    return select(Membership).where(
        Membership.user_id == bindparam("user_id"),
        Membership.workspace_id == select(Workspace.id).where(Workspace.slug == bindparam("slug")).scalar_subquery(),
    )


def load_membership(slug: str, user_id: int):
    """Return the (workspace, membership) of ``user_id`` in the workspace ``slug``, or None.

    One statement: the membership loads its workspace and user eagerly (see Membership).
    """
    membership = db.session.scalars(_membership_statement(), {"user_id": user_id, "slug": slug}).first()
    return (membership.workspace, membership) if membership is not None else None


def workspace_page(permission: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Guard a ``/w/<slug>/...`` view: members only (404 to others), then ``permission`` (403).

    The view receives ``workspace`` and ``membership`` instead of ``slug``.
    """

    def decorator(view: Callable[..., Any]) -> Callable[..., Any]:
        @wraps(view)
        def wrapper(slug: str, **kwargs: Any) -> Any:
            # The membership of the session's user is read before login_required loads that user:
            # it brings the user along, so the user loader (which still checks the session version
            # and that the account is active) finds it in the session instead of querying again.
            from morket.accounts.service import parse_session_id

            parsed = parse_session_id(session.get("_user_id"))
            preloaded = (parsed[0], load_membership(slug, parsed[0])) if parsed is not None else None
            return guarded(slug, preloaded, **kwargs)

        @login_required
        def guarded(slug: str, preloaded: tuple[int, Any] | None, **kwargs: Any) -> Any:
            if preloaded is not None and preloaded[0] == current_user.id:
                found = preloaded[1]
            else:
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
