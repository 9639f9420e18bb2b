"""The one declaration of roles and of which role may do what.

Roles rank owner > admin > member > viewer; ``billing_admin`` is a side role that sees billing
and credits only. Every permission check in views, the API and services goes through ``can``.
"""

from __future__ import annotations

OWNER, ADMIN, MEMBER, VIEWER, BILLING_ADMIN = "owner", "admin", "member", "viewer", "billing_admin"
ROLES: tuple[str, ...] = (OWNER, ADMIN, MEMBER, VIEWER, BILLING_ADMIN)
RANKED: tuple[str, ...] = (VIEWER, MEMBER, ADMIN, OWNER)

_EVERYONE = frozenset(ROLES)
_READERS = frozenset({OWNER, ADMIN, MEMBER, VIEWER})
_WRITERS = frozenset({OWNER, ADMIN, MEMBER})
_MANAGERS = frozenset({OWNER, ADMIN})
_OWNERS = frozenset({OWNER})
_BILLING = frozenset({OWNER, ADMIN, BILLING_ADMIN})

PERMISSIONS: dict[str, frozenset[str]] = {
    "workspace.view": _EVERYONE,
    "workspace.rename": _MANAGERS,
    "workspace.delete": _OWNERS,
    "workspace.transfer": _OWNERS,
    "members.view": _EVERYONE,
    "members.invite": _MANAGERS,
    "members.remove": _MANAGERS,
    "members.change_role": _MANAGERS,
    "api_keys.view": _MANAGERS,
    "api_keys.manage": _MANAGERS,
    "tables.view": _READERS,
    "tables.edit": _WRITERS,
    "tables.manage": _WRITERS,
    "credentials.view": _MANAGERS,
    "credentials.manage": _MANAGERS,
    "enrichment.view": _READERS,
    "enrichment.run": _WRITERS,
    "scrape.run": _WRITERS,
    "credits.view": _BILLING,
    "billing.manage": _BILLING,
    "audit.view": _MANAGERS,
    "crm.view": _READERS,
    "crm.use": _WRITERS,
    "crm.manage": _MANAGERS,
    "webhooks.view": _MANAGERS,
    "webhooks.manage": _MANAGERS,
    "ai.view": _READERS,
    "ai.manage": _MANAGERS,
}


def can(role: str | None, permission: str) -> bool:
    """Return whether ``role`` holds ``permission``; unknown permissions are a programming error."""
    allowed = PERMISSIONS[permission]
    return role is not None and role in allowed


def outranks_or_equals(role: str, other: str) -> bool:
    """Whether ``role`` may manage someone holding ``other`` (owners only manage owners)."""
    if other == BILLING_ADMIN:
        other = MEMBER
    if role == BILLING_ADMIN:
        return False
    return RANKED.index(role) >= RANKED.index(other)
