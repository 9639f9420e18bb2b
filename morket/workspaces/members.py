"""The membership lookups the workspace guard runs (``core/tenancy.py``), owned by this domain.

``register`` hands ``membership_statement`` to the guard. Read-only hot paths (the grid's row
windows) read the membership, its user and workspace in the same statement as their own data:
their statement starts with ``MEMBER_COLUMNS`` from ``MEMBER_FROM`` where ``MEMBER_WHERE``,
bound with ``member_params``, and ``core.tenancy.member_records`` splits the row.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Select, bindparam, select

from morket.core.security import hash_token
from morket.workspaces.models import Membership, Workspace

# The second column says whether the browser session is live (not ended, not expired): the user
# loader refuses an ended session here as it does when it queries (``accounts.service``). The
# order is the one ``core.tenancy.member_records`` reads.
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
    return {"user_id": session_ref.user_id, "session_key_hash": hash_token(session_ref.key)}


def membership_statement() -> Select:
    """The membership of ``user_id`` in the workspace ``slug`` (bound values), for ``load_membership``."""
    return select(Membership).where(
        Membership.user_id == bindparam("user_id"),
        Membership.workspace_id == select(Workspace.id).where(Workspace.slug == bindparam("slug")).scalar_subquery(),
    )
