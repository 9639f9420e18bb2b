"""Workspace services: workspaces, members and roles, invitations and API keys.

Every function checks the actor's role with ``can`` (the one declaration in core/roles.py),
writes an audit event, and flushes; the caller commits once.
"""

from __future__ import annotations

import itertools
import re
import unicodedata
from collections.abc import Callable
from datetime import timedelta
from typing import NamedTuple

from flask import current_app
from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer
from sqlalchemy import case, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import aliased

from morket.accounts.models import RefreshToken, User
from morket.core.audit import record_audit
from morket.core.db import utcnow
from morket.core.errors import Conflict, Forbidden, NotFound, ValidationFailed
from morket.core.roles import ADMIN, MEMBER, OWNER, ROLES, VIEWER, can, outranks_or_equals
from morket.core.security import hash_token, new_token
from morket.extensions import db
from morket.workspaces.models import ApiKey, Invitation, Membership, Workspace

NAME_MAX = 120
SLUG_MAX = 48
INVITATION_TTL = timedelta(days=7)
INVITATION_SALT = "morket.workspaces.invitation"
API_KEY_PREFIX = "mk_live_"
API_KEY_DISPLAY_CHARS = 8
EMAIL_RE = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")

# Members are listed by rank: owners first, viewers and billing admins last.
_ROLE_ORDER = case(
    {OWNER: 0, ADMIN: 1, MEMBER: 2, VIEWER: 3},
    value=Membership.role,
    else_=4,
)


# Helpers --------------------------------------------------------------------------------------


def _clean_name(name: str | None, field: str = "name", what: str = "Name") -> str:
    cleaned = " ".join((name or "").split())
    if not cleaned:
        raise ValidationFailed(f"{what} is required.", fields={field: [f"{what} is required."]})
    if len(cleaned) > NAME_MAX:
        message = f"{what} must be at most {NAME_MAX} characters."
        raise ValidationFailed(message, fields={field: [message]})
    return cleaned


def _check_role_name(role: str, field: str = "role") -> str:
    if role not in ROLES:
        message = f"Choose one of: {', '.join(ROLES)}."
        raise ValidationFailed(message, fields={field: [message]})
    return role


def slugify(name: str) -> str:
    """Return a URL slug of ``name``: lowercase ASCII letters, digits and single hyphens."""
    ascii_name = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
    slug = re.sub(r"[^a-z0-9]+", "-", ascii_name.lower()).strip("-")[:SLUG_MAX].strip("-")
    return slug or "workspace"


def _unique_slug(name: str) -> str:
    base = slugify(name)
    taken = set(db.session.scalars(select(Workspace.slug).where(Workspace.slug.like(f"{base[: SLUG_MAX - 8]}%"))))
    if base not in taken:
        return base
    candidates = (f"{base[: SLUG_MAX - len(str(n)) - 1]}-{n}" for n in itertools.count(2))
    return next(c for c in candidates if c not in taken)


def get_membership(workspace: Workspace, user: User) -> Membership | None:
    """Return ``user``'s membership in ``workspace``, or None."""
    return db.session.scalar(
        select(Membership).where(Membership.workspace_id == workspace.id, Membership.user_id == user.id)
    )


def _require(workspace: Workspace, actor: User, permission: str) -> Membership:
    membership = get_membership(workspace, actor)
    if membership is None:
        raise NotFound("Workspace not found.")
    if not can(membership.role, permission):
        raise Forbidden("Your role in this workspace does not allow this.")
    return membership


def get_member_or_404(workspace: Workspace, membership_id: int) -> Membership:
    """Return the membership ``membership_id`` of ``workspace``, or raise NotFound."""
    membership = db.session.scalar(
        select(Membership).where(Membership.id == membership_id, Membership.workspace_id == workspace.id)
    )
    if membership is None:
        raise NotFound("That member is not in this workspace.")
    return membership


def _owner_count(workspace: Workspace) -> int:
    # Lock the owner rows so two owners leaving at once cannot both pass the "last owner" check.
    owners = db.session.scalars(
        select(Membership.id).where(Membership.workspace_id == workspace.id, Membership.role == OWNER).with_for_update()
    ).all()
    return len(owners)


# Workspaces -----------------------------------------------------------------------------------


# What the domains above this one do in the transaction that creates a workspace (credits grants
# its welcome credits), registered by them (``on_workspace_created``): workspaces imports none of them.
_ON_CREATE: dict[str, Callable[[Workspace, User], object]] = {}


def on_workspace_created(name: str, hook: Callable[[Workspace, User], object]) -> None:
    """Run ``hook(workspace, actor)`` in every ``create_workspace``, once the owner is a member."""
    _ON_CREATE[name] = hook


# What the domains above this one check before an invitation goes out (billing: the plan's seats),
# registered by them (``on_invite``): ``check(workspace, seats_taken)`` raises to refuse it.
_INVITE_CHECKS: dict[str, Callable[[Workspace, int], object]] = {}


def on_invite(name: str, check: Callable[[Workspace, int], object]) -> None:
    """Call ``check(workspace, seats_taken)`` (members and other pending invitations) in every ``invite_member``."""
    _INVITE_CHECKS[name] = check


def create_workspace(actor: User, name: str) -> Workspace:
    """Create a workspace named ``name`` with ``actor`` as its owner."""
    if not actor.is_verified:
        raise Forbidden("Confirm your email address before creating a workspace.")
    name = _clean_name(name, what="Workspace name")
    workspace = None
    for _attempt in range(3):
        # Two workspaces created with the same name at once: the loser retries with the next slug.
        try:
            with db.session.begin_nested():
                workspace = Workspace(name=name, slug=_unique_slug(name))
                db.session.add(workspace)
        except IntegrityError:
            workspace = None
            continue
        break
    if workspace is None:
        raise Conflict("Could not reserve an address for this workspace. Try again.")
    db.session.add(Membership(workspace_id=workspace.id, user_id=actor.id, role=OWNER))
    for hook in _ON_CREATE.values():
        hook(workspace, actor)
    record_audit(workspace, actor, "workspace.created", workspace.slug, name=name)
    db.session.flush()
    return workspace


def rename_workspace(workspace: Workspace, actor: User, name: str) -> Workspace:
    """Rename ``workspace``; its slug (and so its URLs) stays the same."""
    _require(workspace, actor, "workspace.rename")
    name = _clean_name(name, what="Workspace name")
    if name != workspace.name:
        record_audit(workspace, actor, "workspace.renamed", workspace.slug, old=workspace.name, new=name)
        workspace.name = name
        db.session.flush()
    return workspace


def delete_workspace(workspace: Workspace, actor: User) -> None:
    """Delete ``workspace`` and everything in it (owners only)."""
    _require(workspace, actor, "workspace.delete")
    # The workspace's own audit rows go with it; this record is kept at platform level.
    record_audit(None, actor, "workspace.deleted", workspace.slug, workspace_id=workspace.id, name=workspace.name)
    db.session.delete(workspace)
    db.session.flush()


def list_workspaces_for(user: User) -> list[tuple[Workspace, Membership]]:
    """Return ``user``'s workspaces with their membership, by name."""
    rows = db.session.execute(
        select(Workspace, Membership)
        .join(Membership, Membership.workspace_id == Workspace.id)
        .where(Membership.user_id == user.id)
        .order_by(func.lower(Workspace.name), Workspace.id)
    )
    return [(w, m) for w, m in rows]


# Members --------------------------------------------------------------------------------------


def list_members(workspace: Workspace) -> list[Membership]:
    """Return the workspace's memberships (with users), owners first."""
    return list(
        db.session.scalars(
            select(Membership)
            .join(User, User.id == Membership.user_id)
            .where(Membership.workspace_id == workspace.id)
            .order_by(_ROLE_ORDER, func.lower(User.email))
        )
    )


def change_member_role(workspace: Workspace, actor: User, membership_id: int, role: str) -> Membership:
    """Give member ``membership_id`` the role ``role``."""
    mine = _require(workspace, actor, "members.change_role")
    _check_role_name(role)
    target = get_member_or_404(workspace, membership_id)
    if target.user_id == actor.id:
        raise Forbidden("You cannot change your own role. Ask another owner or admin.")
    if not outranks_or_equals(mine.role, target.role):
        raise Forbidden(f"Only an owner can change the role of an {target.role}.")
    if not outranks_or_equals(mine.role, role):
        raise Forbidden(f"Only an owner can make someone an {role}.")
    if role != target.role:
        record_audit(workspace, actor, "member.role_changed", target.user.email, old=target.role, new=role)
        target.role = role
        db.session.flush()
    return target


def _revoke_refresh_tokens(workspace: Workspace, user_id: int) -> None:
    # A departed member's API sessions for this workspace end with their membership.
    db.session.execute(
        update(RefreshToken)
        .where(
            RefreshToken.workspace_id == workspace.id,
            RefreshToken.user_id == user_id,
            RefreshToken.revoked_at.is_(None),
        )
        .values(revoked_at=utcnow())
    )


def remove_member(workspace: Workspace, actor: User, membership_id: int) -> None:
    """Remove member ``membership_id`` from ``workspace``."""
    mine = _require(workspace, actor, "members.remove")
    target = get_member_or_404(workspace, membership_id)
    if target.user_id == actor.id:
        raise Forbidden("To remove yourself, leave the workspace instead.")
    if not outranks_or_equals(mine.role, target.role):
        raise Forbidden(f"Only an owner can remove an {target.role}.")
    record_audit(workspace, actor, "member.removed", target.user.email, role=target.role)
    _revoke_refresh_tokens(workspace, target.user_id)
    db.session.delete(target)
    db.session.flush()


def transfer_ownership(workspace: Workspace, actor: User, membership_id: int) -> Membership:
    """Make member ``membership_id`` an owner and step ``actor`` down to admin."""
    mine = _require(workspace, actor, "workspace.transfer")
    target = get_member_or_404(workspace, membership_id)
    if target.id == mine.id:
        raise ValidationFailed("You already own this workspace. Choose another member.")
    record_audit(workspace, actor, "workspace.ownership_transferred", target.user.email, old_role=target.role)
    target.role = OWNER
    mine.role = ADMIN
    db.session.flush()
    return target


def leave_workspace(workspace: Workspace, actor: User) -> None:
    """Remove ``actor`` from ``workspace``; the last owner cannot leave."""
    mine = _require(workspace, actor, "workspace.view")
    if mine.role == OWNER and _owner_count(workspace) <= 1:
        raise Conflict("You are the last owner. Transfer ownership to another member or delete the workspace first.")
    record_audit(workspace, actor, "member.left", actor.email, role=mine.role)
    _revoke_refresh_tokens(workspace, actor.id)
    db.session.delete(mine)
    db.session.flush()


# Invitations ----------------------------------------------------------------------------------


def _serializer() -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(current_app.config["SECRET_KEY"], salt=INVITATION_SALT)


def invitation_token(invitation: Invitation) -> str:
    """Return the signed, expiring link token for ``invitation``."""
    return _serializer().dumps(invitation.id)


def list_pending_invitations(workspace: Workspace) -> list[Invitation]:
    """Return invitations not yet accepted or revoked (expired ones included), newest first."""
    return list(
        db.session.scalars(
            select(Invitation)
            .where(
                Invitation.workspace_id == workspace.id,
                Invitation.accepted_at.is_(None),
                Invitation.revoked_at.is_(None),
            )
            .order_by(Invitation.created_at.desc(), Invitation.id.desc())
        )
    )


class PendingInvitation(NamedTuple):
    """An invitation waiting for its invitee, with what the invitee needs to decide."""

    invitation: Invitation
    workspace: Workspace
    inviter: User | None
    token: str


def list_invitations_for(user: User) -> list[PendingInvitation]:
    """Return the live invitations sent to ``user``'s address (not accepted, revoked or expired), newest first.

    The address is the account's, so an unverified account sees them too; accepting still
    requires a verified address (``check_invitee``).
    """
    inviter = aliased(User)
    rows = db.session.execute(
        select(Invitation, Workspace, inviter)
        .join(Workspace, Workspace.id == Invitation.workspace_id)
        .outerjoin(inviter, inviter.id == Invitation.invited_by_id)
        .where(
            Invitation.email == user.email.lower(),
            Invitation.accepted_at.is_(None),
            Invitation.revoked_at.is_(None),
            Invitation.expires_at > utcnow(),
        )
        .order_by(Invitation.created_at.desc(), Invitation.id.desc())
    )
    return [PendingInvitation(inv, ws, who, invitation_token(inv)) for inv, ws, who in rows]


def invite_member(workspace: Workspace, actor: User, email: str, role: str) -> Invitation:
    """Invite ``email`` to ``workspace`` as ``role`` and email them a link valid for 7 days."""
    from morket.mail.service import absolute_url, send_email

    mine = _require(workspace, actor, "members.invite")
    email = (email or "").strip().lower()
    if not EMAIL_RE.fullmatch(email) or len(email) > 320:
        raise ValidationFailed("Enter a valid email address.", fields={"email": ["Enter a valid email address."]})
    _check_role_name(role)
    if not outranks_or_equals(mine.role, role):
        raise Forbidden(f"Only an owner can invite someone as an {role}.")
    already = db.session.scalar(
        select(Membership.id)
        .join(User, User.id == Membership.user_id)
        .where(Membership.workspace_id == workspace.id, func.lower(User.email) == email)
    )
    if already is not None:
        message = f"{email} is already a member of this workspace."
        raise Conflict(message, fields={"email": [message]})
    now = utcnow()
    # A new invitation to the same address replaces the pending one, so only one link works.
    pending = db.session.scalars(
        select(Invitation).where(
            Invitation.workspace_id == workspace.id,
            Invitation.email == email,
            Invitation.accepted_at.is_(None),
            Invitation.revoked_at.is_(None),
        )
    )
    pending = list(pending)
    if _INVITE_CHECKS:
        taken = db.session.scalar(
            select(func.count()).select_from(Membership).where(Membership.workspace_id == workspace.id)
        ) + db.session.scalar(
            select(func.count())
            .select_from(Invitation)
            .where(
                Invitation.workspace_id == workspace.id,
                Invitation.email != email,
                Invitation.accepted_at.is_(None),
                Invitation.revoked_at.is_(None),
                Invitation.expires_at > now,
            )
        )
        for check in _INVITE_CHECKS.values():
            check(workspace, int(taken))
    for previous in pending:
        previous.revoked_at = now
    invitation = Invitation(
        workspace_id=workspace.id, email=email, role=role, invited_by_id=actor.id, expires_at=now + INVITATION_TTL
    )
    db.session.add(invitation)
    db.session.flush()
    record_audit(workspace, actor, "member.invited", email, role=role, invitation_id=invitation.id)
    send_email(
        email,
        f"{actor.name or actor.email} invited you to {workspace.name} on Morket",
        "invitation",
        workspace_name=workspace.name,
        inviter=actor.name or actor.email,
        role=role,
        link=absolute_url("workspaces.invitation", token=invitation_token(invitation)),
        expires_days=INVITATION_TTL.days,
    )
    return invitation


def get_invitation_or_404(workspace: Workspace, invitation_id: int) -> Invitation:
    """Return the invitation ``invitation_id`` of ``workspace``, or raise NotFound."""
    invitation = db.session.scalar(
        select(Invitation).where(Invitation.id == invitation_id, Invitation.workspace_id == workspace.id)
    )
    if invitation is None:
        raise NotFound("That invitation is not in this workspace.")
    return invitation


def revoke_invitation(workspace: Workspace, actor: User, invitation_id: int) -> Invitation:
    """Revoke a pending invitation so its link stops working."""
    _require(workspace, actor, "members.invite")
    invitation = get_invitation_or_404(workspace, invitation_id)
    if invitation.accepted_at is not None:
        raise Conflict("That invitation was already accepted; remove the member instead.")
    if invitation.revoked_at is None:
        invitation.revoked_at = utcnow()
        record_audit(workspace, actor, "member.invitation_revoked", invitation.email, invitation_id=invitation.id)
        db.session.flush()
    return invitation


def load_invitation(token: str) -> Invitation:
    """Return the live invitation behind ``token``, or raise a domain error that says why not."""
    try:
        invitation_id = _serializer().loads(token, max_age=int(INVITATION_TTL.total_seconds()))
    except SignatureExpired:
        raise Conflict("This invitation has expired. Ask a workspace admin to invite you again.") from None
    except BadSignature:
        raise NotFound("This invitation link is not valid. Check that you copied all of it.") from None
    invitation = db.session.get(Invitation, invitation_id) if isinstance(invitation_id, int) else None
    if invitation is None:
        raise NotFound("This invitation no longer exists; the workspace may have been deleted.")
    if invitation.revoked_at is not None:
        raise Conflict("This invitation was revoked. Ask a workspace admin for a new one.")
    if invitation.accepted_at is not None:
        raise Conflict("This invitation was already accepted.")
    if invitation.is_expired:
        raise Conflict("This invitation has expired. Ask a workspace admin to invite you again.")
    return invitation


def check_invitee(invitation: Invitation, user: User) -> None:
    """Raise Forbidden unless ``user`` has verified the address ``invitation`` was sent to."""
    if not user.is_verified:
        raise Forbidden("Confirm your email address first; then open the invitation link again.")
    if user.email.lower() != invitation.email.lower():
        raise Forbidden(
            f"This invitation was sent to a different email address than {user.email}. "
            "Log in with the invited address to accept it."
        )


def accept_invitation(token: str, user: User) -> Membership:
    """Join the invitation's workspace as ``user``, who must have verified the invited address."""
    invitation = load_invitation(token)
    check_invitee(invitation, user)
    workspace = db.session.get(Workspace, invitation.workspace_id)
    invitation.accepted_at = utcnow()
    membership = get_membership(workspace, user)
    if membership is None:
        membership = Membership(workspace_id=workspace.id, user_id=user.id, role=invitation.role)
        db.session.add(membership)
        record_audit(workspace, user, "member.joined", user.email, role=invitation.role, invitation_id=invitation.id)
    db.session.flush()
    return membership


# API keys -------------------------------------------------------------------------------------


def create_api_key(workspace: Workspace, actor: User, *, name: str, role: str) -> tuple[ApiKey, str]:
    """Create an API key; return it and its plaintext, which is shown once and never stored."""
    mine = _require(workspace, actor, "api_keys.manage")
    name = _clean_name(name, what="Key name")
    _check_role_name(role)
    if not outranks_or_equals(mine.role, role):
        raise Forbidden(f"Only an owner can create a key with the {role} role.")
    secret = new_token(32)
    plaintext = f"{API_KEY_PREFIX}{secret}"
    key = ApiKey(
        workspace_id=workspace.id,
        name=name,
        prefix=secret[:API_KEY_DISPLAY_CHARS],
        key_hash=hash_token(plaintext),
        role=role,
        created_by_id=actor.id,
    )
    db.session.add(key)
    db.session.flush()
    record_audit(workspace, actor, "api_key.created", name, key_id=key.id, role=role, prefix=key.prefix)
    return key, plaintext


def list_api_keys(workspace: Workspace) -> list[ApiKey]:
    """Return the workspace's API keys: active ones first, newest first."""
    return list(
        db.session.scalars(
            select(ApiKey)
            .where(ApiKey.workspace_id == workspace.id)
            .order_by(ApiKey.revoked_at.is_not(None), ApiKey.created_at.desc(), ApiKey.id.desc())
        )
    )


def revoke_api_key(workspace: Workspace, actor: User, key_id: int) -> ApiKey:
    """Revoke API key ``key_id``; requests using it are refused from now on."""
    _require(workspace, actor, "api_keys.manage")
    key = db.session.scalar(select(ApiKey).where(ApiKey.id == key_id, ApiKey.workspace_id == workspace.id))
    if key is None:
        raise NotFound("That API key is not in this workspace.")
    if key.revoked_at is None:
        key.revoked_at = utcnow()
        record_audit(workspace, actor, "api_key.revoked", key.name, key_id=key.id, prefix=key.prefix)
        db.session.flush()
    return key
