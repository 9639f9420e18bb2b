"""Workspace scoping for pages: load the workspace by slug for the current member or 404."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import cache, wraps
from typing import Any

from flask import abort, g, session
from flask_login import UserMixin, current_user, login_required
from sqlalchemy import Engine, Select, bindparam, select

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


# --- the membership as plain records, for read-only hot paths ---------------------------------------
#
# A page that only reads (the grid's row windows) can read the membership, its user and workspace
# in the same statement as its own data, as plain records, with no transaction around its reads:
# ``workspace_page(..., member_source=...)``. The records carry what the guard, the user loader and
# the rate-limit key use; any other attribute loads the ORM object once and answers from it, so code
# that needs more (an error page, a fallback path) behaves as with the ORM objects.

# The second column says whether the browser session is live (not ended, not expired): the user
# loader refuses an ended session here as it does when it queries (``accounts.service``).
MEMBER_COLUMNS = (
    "u.id, EXISTS (SELECT 1 FROM user_sessions s WHERE s.key_hash = %(session_key_hash)s AND s.user_id = u.id"
    " AND s.ended_at IS NULL AND s.expires_at > now()), u.disabled_at IS NULL, w.id, w.slug, m.id, m.role"
)
MEMBER_FROM = (
    "workspaces w JOIN memberships m ON m.workspace_id = w.id AND m.user_id = %(user_id)s "
    "JOIN users u ON u.id = m.user_id"
)
MEMBER_WHERE = "w.slug = %(slug)s"


def member_params(session_ref: Any) -> dict[str, Any]:
    """The bound values ``MEMBER_FROM`` and ``MEMBER_COLUMNS`` use, from the browser's session
    (``accounts.service.SessionRef``)."""
    from morket.core.security import hash_token

    return {"user_id": session_ref.user_id, "session_key_hash": hash_token(session_ref.key)}


class _Lazy:
    """A plain record that loads its ORM object for any attribute it does not carry."""

    __slots__ = ()

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        loaded = db.session.get(self._model_class(), self.id)
        if loaded is None:
            raise AttributeError(name)
        return getattr(loaded, name)


@dataclass(frozen=True, slots=True, eq=False)
class SessionUser(_Lazy, UserMixin):
    """The session's user as the guard and the user loader see it."""

    id: int
    browser_session_id: str
    session_live: bool
    active: bool

    @staticmethod
    def _model_class() -> Any:
        from morket.accounts.models import User

        return User

    def get_id(self) -> str:
        return self.browser_session_id

    @property
    def is_active(self) -> bool:
        return self.active


@dataclass(frozen=True, slots=True)
class WorkspaceRecord(_Lazy):
    id: int
    slug: str

    @staticmethod
    def _model_class() -> Any:
        from morket.workspaces.models import Workspace

        return Workspace


@dataclass(frozen=True, slots=True)
class MembershipRecord(_Lazy):
    id: int
    role: str
    workspace_id: int
    user_id: int

    @staticmethod
    def _model_class() -> Any:
        from morket.workspaces.models import Membership

        return Membership


def member_records(row: Any, session_id: str) -> tuple[SessionUser, WorkspaceRecord, MembershipRecord]:
    """Split the leading ``MEMBER_COLUMNS`` of a row into the user, workspace and membership."""
    user_id, session_live, active, workspace_id, slug, membership_id, role = row[:7]
    return (
        SessionUser(user_id, session_id, bool(session_live), bool(active)),
        WorkspaceRecord(workspace_id, slug),
        MembershipRecord(membership_id, role, workspace_id, user_id),
    )


def preloaded_session_user(user_id: int) -> SessionUser | None:
    """The user a ``member_source`` read along with the membership in this request, if any."""
    found = g.get("morket_session_user")
    return found if found is not None and found.id == user_id else None


def reads_without_transaction() -> bool:
    """Run this request's next statements outside a transaction (each sees the latest commit).

    For read-only requests: no BEGIN and ROLLBACK around their statements. Only at the start of
    the session's work, and only on the engine's own connections (a session bound to a connection
    that is already in a transaction keeps it); anything that will write calls
    ``transaction_for_writes`` first.
    """
    session = db.session()
    if session.in_transaction() or not isinstance(session.get_bind(), Engine):
        return False
    db.session.connection(execution_options={"isolation_level": "AUTOCOMMIT"})
    g.morket_autocommit = True
    return True


def transaction_for_writes() -> None:
    """Leave ``reads_without_transaction``: the next statement begins a transaction as usual."""
    if g.pop("morket_autocommit", False):
        db.session.rollback()  # nothing to undo: every statement so far committed on its own


def workspace_page(
    permission: str, *, member_source: Callable[..., Any] | None = None
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Guard a ``/w/<slug>/...`` view: members only (404 to others), then ``permission`` (403).

    The view receives ``workspace`` and ``membership`` instead of ``slug``.

    ``member_source(slug, session_ref, **kwargs)``, for read-only views, runs one statement (bound
    values from ``member_params(session_ref)``) whose row starts with ``MEMBER_COLUMNS`` (no row:
    not a member) and returns ``(row, extra)``; the view gets plain records (see above) and finds
    ``extra`` in ``g.member_source``. The checks are the same: the user loader still checks that
    the browser session is live and that the account is active.
    """

    def decorator(view: Callable[..., Any]) -> Callable[..., Any]:
        @wraps(view)
        def wrapper(slug: str, **kwargs: Any) -> Any:
            # The membership of the session's user is read before login_required loads that user:
            # it brings the user along, so the user loader (which still checks that the session is
            # live and the account active) finds it in the session instead of querying again.
            from morket.accounts.service import parse_session_id

            session_id = session.get("_user_id")
            parsed = parse_session_id(session_id)
            if parsed is None:
                preloaded = None
            elif member_source is not None:
                reads_without_transaction()
                row, g.member_source = member_source(slug, parsed, **kwargs)
                if row is None:
                    preloaded = (parsed[0], None)
                else:
                    user, workspace, membership = member_records(row, session_id)
                    g.morket_session_user = user
                    preloaded = (parsed[0], (workspace, membership))
            else:
                preloaded = (parsed[0], load_membership(slug, parsed[0]))
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
