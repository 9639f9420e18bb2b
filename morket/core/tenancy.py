"""Workspace scoping for pages: load the workspace by slug for the current member or 404."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import wraps
from typing import Any

from flask import abort, g, session
from flask_login import UserMixin, current_user, login_required
from sqlalchemy import Engine, Select

from morket.core.logging import log_security_event
from morket.core.roles import can
from morket.extensions import db


class _Domains:
    """What the guard needs from the domains that own users and workspaces.

    Core knows no domain: ``accounts`` and ``workspaces`` fill this in when they register
    (``register_accounts``, ``register_workspaces``). Plain attributes, read once per request as a
    module import was before, so the guard's hot path does no more work than it did.
    """

    __slots__ = ("membership_statement", "membership_model", "parse_session_id", "user_model", "workspace_model")

    def __init__(self) -> None:
        self.parse_session_id: Callable[[str | None], Any] = _not_registered("accounts")
        self.user_model: Any = None
        self.membership_statement: Select | None = None
        self.membership_model: Any = None
        self.workspace_model: Any = None


def _not_registered(domain: str) -> Callable[..., Any]:
    def refuse(*_args: Any) -> Any:
        raise RuntimeError(f"morket.{domain} has not registered with core.tenancy (create_app registers it)")

    return refuse


_domains = _Domains()


def register_accounts(*, user_model: Any, parse_session_id: Callable[[str | None], Any]) -> None:
    """Tell the guard the user model and how to read ``(user id, session key)`` from a session id."""
    _domains.user_model = user_model
    _domains.parse_session_id = parse_session_id


def register_workspaces(*, workspace_model: Any, membership_model: Any, membership_statement: Select) -> None:
    """Tell the guard the workspace and membership models and the membership lookup.

    ``membership_statement`` takes the bound values ``user_id`` and ``slug`` and selects the
    membership, with its workspace and user loaded eagerly; it is built once, since every page
    request runs it.
    """
    _domains.workspace_model = workspace_model
    _domains.membership_model = membership_model
    _domains.membership_statement = membership_statement


def load_membership(slug: str, user_id: int):
    """Return the (workspace, membership) of ``user_id`` in the workspace ``slug``, or None.

    One statement: the membership loads its workspace and user eagerly (see Membership).
    """
    statement = _domains.membership_statement
    if statement is None:
        raise RuntimeError("morket.workspaces has not registered with core.tenancy (create_app registers it)")
    membership = db.session.scalars(statement, {"user_id": user_id, "slug": slug}).first()
    return (membership.workspace, membership) if membership is not None else None


# --- the membership as plain records, for read-only hot paths ---------------------------------------
#
# A page that only reads (the grid's row windows) can read the membership, its user and workspace
# in the same statement as its own data, as plain records, with no transaction around its reads:
# ``workspace_page(..., member_source=...)``. The records carry what the guard, the user loader and
# the rate-limit key use; any other attribute loads the ORM object once and answers from it, so code
# that needs more (an error page, a fallback path) behaves as with the ORM objects. The statement's
# leading columns are the workspaces domain's (``morket.workspaces.members.MEMBER_COLUMNS``).


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
        return _domains.user_model

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
        return _domains.workspace_model


@dataclass(frozen=True, slots=True)
class MembershipRecord(_Lazy):
    id: int
    role: str
    workspace_id: int
    user_id: int

    @staticmethod
    def _model_class() -> Any:
        return _domains.membership_model


def member_records(row: Any, session_id: str) -> tuple[SessionUser, WorkspaceRecord, MembershipRecord]:
    """Split the leading ``MEMBER_COLUMNS`` of a row (``morket.workspaces.members``) into the user,
    workspace and membership."""
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
    permission: str, *, member_source: Callable[..., Any] | None = None, hidden: bool = False
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Guard a ``/w/<slug>/...`` view: members only (404 to others), then ``permission`` (403).

    With ``hidden``, a member without the permission gets 404 too: the page's existence is not
    theirs to know (billing).

    The view receives ``workspace`` and ``membership`` instead of ``slug``.

    ``member_source(slug, session_ref, **kwargs)``, for read-only views, runs one statement (bound
    values from ``morket.workspaces.members.member_params(session_ref)``) whose row starts with
    ``MEMBER_COLUMNS`` (no row:
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
            session_id = session.get("_user_id")
            parsed = _domains.parse_session_id(session_id)
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
                abort(404 if hidden else 403)
            return view(workspace=workspace, membership=membership, **kwargs)

        wrapper.morket_permission = permission  # type: ignore[attr-defined]
        wrapper.morket_hidden = hidden  # type: ignore[attr-defined]
        return wrapper

    return decorator
