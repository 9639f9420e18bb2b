"""Platform-admin services: list and search users and workspaces, disable and enable users."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import Select, case, func, or_, select

from morket.accounts.models import User
from morket.accounts.service import end_all_sessions
from morket.core.audit import record_audit
from morket.core.db import utcnow
from morket.core.errors import Conflict, NotFound
from morket.core.roles import ADMIN, BILLING_ADMIN, MEMBER, OWNER, VIEWER
from morket.extensions import db
from morket.workspaces.models import Membership, Workspace

MAX_PER_PAGE = 50
DEFAULT_PER_PAGE = 25

_ROLE_ORDER = case(
    {OWNER: 0, ADMIN: 1, MEMBER: 2, BILLING_ADMIN: 3, VIEWER: 4},
    value=Membership.role,
    else_=5,
)


@dataclass(frozen=True)
class Page:
    """One page of results: ``items`` plus whether a previous and a next page exist."""

    items: list[Any]
    page: int
    per_page: int
    has_next: bool

    @property
    def has_prev(self) -> bool:
        return self.page > 1


def _require_platform_admin(actor: User | None) -> None:
    # Defence in depth: the views hide /admin already; a service called from elsewhere must not leak.
    if actor is None or not actor.is_active or not actor.is_platform_admin:
        raise NotFound("Not found.")


def _like(term: str) -> str:
    escaped = term.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def _paginate(stmt: Select, page: int, per_page: int) -> Page:
    page = max(1, page)
    per_page = min(max(1, per_page), MAX_PER_PAGE)
    rows = db.session.execute(stmt.limit(per_page + 1).offset((page - 1) * per_page)).all()
    return Page(
        items=[tuple(row) for row in rows[:per_page]], page=page, per_page=per_page, has_next=len(rows) > per_page
    )


def list_users(actor: User, *, search: str = "", page: int = 1, per_page: int = DEFAULT_PER_PAGE) -> Page:
    """Return a page of ``(user, workspace_count)`` newest first, filtered by email or name."""
    _require_platform_admin(actor)
    workspace_count = (
        select(func.count(Membership.id)).where(Membership.user_id == User.id).correlate(User).scalar_subquery()
    )
    stmt = select(User, workspace_count.label("workspace_count")).order_by(User.id.desc())
    if search:
        pattern = _like(search)
        stmt = stmt.where(or_(User.email.ilike(pattern, escape="\\"), User.name.ilike(pattern, escape="\\")))
    return _paginate(stmt, page, per_page)


def list_workspaces(actor: User, *, search: str = "", page: int = 1, per_page: int = DEFAULT_PER_PAGE) -> Page:
    """Return a page of ``(workspace, member_count)`` newest first, filtered by name or slug."""
    _require_platform_admin(actor)
    member_count = (
        select(func.count(Membership.id))
        .where(Membership.workspace_id == Workspace.id)
        .correlate(Workspace)
        .scalar_subquery()
    )
    stmt = select(Workspace, member_count.label("member_count")).order_by(Workspace.id.desc())
    if search:
        pattern = _like(search)
        stmt = stmt.where(or_(Workspace.name.ilike(pattern, escape="\\"), Workspace.slug.ilike(pattern, escape="\\")))
    return _paginate(stmt, page, per_page)


def get_workspace_with_members(actor: User, workspace_id: int) -> tuple[Workspace, list[Membership]]:
    """Return the workspace and its memberships (owners first), or raise NotFound."""
    _require_platform_admin(actor)
    workspace = db.session.get(Workspace, workspace_id)
    if workspace is None:
        raise NotFound("There is no workspace with that id.")
    members = list(
        db.session.scalars(
            select(Membership)
            .join(User, User.id == Membership.user_id)
            .where(Membership.workspace_id == workspace.id)
            .order_by(_ROLE_ORDER, User.email)
        )
    )
    return workspace, members


def set_user_disabled(actor: User, user_id: int, *, disabled: bool) -> User:
    """Disable (or re-enable) a user, revoke their API refresh tokens, and audit it."""
    _require_platform_admin(actor)
    user = db.session.get(User, user_id)
    if user is None:
        raise NotFound("There is no user with that id.")
    if disabled and user.id == actor.id:
        raise Conflict("You cannot disable your own account.")
    if disabled == (user.disabled_at is not None):
        return user
    user.disabled_at = utcnow() if disabled else None
    if disabled:
        # is_active turning false refuses the user's browsers and tokens already; ending the sessions
        # and revoking the token families means enabling the account again does not bring them back.
        end_all_sessions(user)
    record_audit(None, actor, "user.disabled" if disabled else "user.enabled", f"user:{user.id}", email=user.email)
    db.session.flush()
    return user
