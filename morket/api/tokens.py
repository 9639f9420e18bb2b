"""API tokens: short-lived JWT access tokens and rotating, family-tracked refresh tokens.

An access token (HS256, 15 minutes) names one user in one workspace. A refresh token is an opaque
random string stored hashed; each use consumes it and issues the next one of its family, whose
life slides forward by 7 days up to the family's 30-day cap. Using a consumed token again means it
was stolen or replayed: the whole family is revoked.

Every access token names its family (claim ``fam``) and never outlives it. Each API request reads
the membership and whether the family was revoked in one statement, so revoking a family (a
replay, a logout, a password change, "log out everywhere") refuses its access tokens at once.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from flask import current_app
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import OctKey
from redis.exceptions import RedisError
from sqlalchemy import select, update

from morket.accounts.models import RefreshToken, User
from morket.core.db import utcnow
from morket.core.errors import MorketError, NotFound, Unauthorized
from morket.core.jobs import redis_connection
from morket.core.logging import log_security_event
from morket.core.security import hash_token, new_token
from morket.extensions import db
from morket.workspaces.models import Membership, Workspace

ISSUER = "morket"
AUDIENCE = "morket-api"
ALGORITHM = "HS256"
ACCESS_TTL = timedelta(minutes=15)
REFRESH_TTL = timedelta(days=7)
FAMILY_TTL = timedelta(days=30)
MAX_LIVE_REFRESH_TOKENS = 10
FAMILY_ID_MAX = 36  # RefreshToken.family_id
DENY_LIST_PREFIX = "morket:api:denied-jti:"

_CLAIMS = jwt.JWTClaimsRegistry(
    iss={"essential": True, "value": ISSUER},
    aud={"essential": True, "value": AUDIENCE},
    exp={"essential": True},
    iat={"essential": True},
    sub={"essential": True},
    jti={"essential": True},
    fam={"essential": True},
)


class RefreshTokenReplayed(Unauthorized):
    """A consumed refresh token came back; its family has been revoked (commit, then answer 401)."""


class TokenStoreUnavailableError(MorketError):
    status = 503
    code = "service_unavailable"


@dataclass(frozen=True)
class IssuedTokens:
    access_token: str
    refresh_token: str
    expires_in: int
    workspace: Workspace
    role: str


@dataclass(frozen=True)
class AccessClaims:
    jti: str
    user_id: int
    workspace_id: int
    role: str
    exp: int
    family_id: str


def _signing_key() -> OctKey:
    return OctKey.import_key(current_app.config["MORKET"]["JWT_SECRET"])


def encode_access_token(
    user_id: int,
    workspace_id: int,
    role: str,
    *,
    family_id: str | None = None,
    not_after: datetime | None = None,
    now: datetime | None = None,
) -> str:
    """Return a signed access token for ``user_id`` in ``workspace_id``, of the refresh family
    ``family_id`` (a family of its own when None: only its ``jti`` can revoke it), expiring in 15
    minutes or at ``not_after`` if sooner."""
    issued = int((now or utcnow()).timestamp())
    expires = issued + int(ACCESS_TTL.total_seconds())
    if not_after is not None:
        expires = min(expires, int(not_after.timestamp()))
    claims = {
        "iss": ISSUER,
        "aud": AUDIENCE,
        "jti": uuid.uuid4().hex,
        "sub": str(user_id),
        "role": role,
        "workspace_id": workspace_id,
        "fam": family_id or str(uuid.uuid4()),
        "iat": issued,
        "exp": expires,
    }
    return jwt.encode({"alg": ALGORITHM, "typ": "JWT"}, claims, _signing_key(), algorithms=[ALGORITHM])


def decode_access_token(token: str) -> AccessClaims:
    """Verify signature, issuer, audience and expiry; raise Unauthorized on any defect."""
    try:
        decoded = jwt.decode(token, _signing_key(), algorithms=[ALGORITHM])
        _CLAIMS.validate(decoded.claims)
        claims: dict[str, Any] = decoded.claims
        sub, workspace_id, family_id = claims["sub"], claims.get("workspace_id"), claims["fam"]
        if not (
            isinstance(sub, str)
            and sub.isdecimal()
            and isinstance(workspace_id, int)
            and isinstance(family_id, str)
            and 0 < len(family_id) <= FAMILY_ID_MAX
        ):
            raise Unauthorized("The access token is malformed.")
        return AccessClaims(
            jti=str(claims["jti"]),
            user_id=int(sub),
            workspace_id=workspace_id,
            role=str(claims.get("role", "")),
            exp=int(claims["exp"]),
            family_id=family_id,
        )
    except (JoseError, ValueError, TypeError, KeyError, UnicodeError) as exc:
        message = "The access token has expired." if "expired" in str(exc) else "The access token is not valid."
        raise Unauthorized(message) from None


def is_jti_denied(jti: str) -> bool:
    """Whether the access token ``jti`` was logged out; an unreachable store fails closed."""
    try:
        return bool(redis_connection().exists(DENY_LIST_PREFIX + jti))
    except RedisError:
        raise TokenStoreUnavailableError("Morket cannot check tokens right now. Try again shortly.") from None


def deny_jti(jti: str, exp: int) -> None:
    """Refuse the access token ``jti`` from now until it would have expired anyway."""
    ttl = max(1, exp - int(utcnow().timestamp()))
    try:
        redis_connection().set(DENY_LIST_PREFIX + jti, "1", ex=ttl)
    except RedisError:
        raise TokenStoreUnavailableError("Morket could not log the token out. Try again shortly.") from None


def load_active_membership(user_id: int, workspace_id: int) -> Membership | None:
    """Return the membership of an active user in ``workspace_id`` (user and workspace joined), or None."""
    return db.session.scalar(
        select(Membership)
        .join(User, User.id == Membership.user_id)
        .where(Membership.user_id == user_id, Membership.workspace_id == workspace_id, User.disabled_at.is_(None))
    )


def load_token_membership(claims: AccessClaims) -> Membership | None:
    """Return the membership an access token acts through (None when it is gone or the user is
    disabled); raise Unauthorized when the token's refresh family was revoked. One statement."""
    revoked = (
        select(RefreshToken.id)
        .where(RefreshToken.family_id == claims.family_id, RefreshToken.revoked_at.is_not(None))
        .exists()
    )
    found = db.session.execute(
        select(Membership, revoked)
        .join(User, User.id == Membership.user_id)
        .where(
            Membership.user_id == claims.user_id,
            Membership.workspace_id == claims.workspace_id,
            User.disabled_at.is_(None),
        )
    ).first()
    if found is None:
        return None
    if found[1]:
        log_security_event("access_token_of_revoked_family", user_id=claims.user_id, workspace_id=claims.workspace_id)
        raise Unauthorized("The access token was revoked; sign in again.")
    return found[0]


def issue_token_pair(membership: Membership, *, family_id: str | None = None, family_expires_at=None) -> IssuedTokens:
    """Issue an access token and a refresh token for ``membership`` (a new family unless given)."""
    now = utcnow()
    if family_id is None:
        family_id, family_expires_at = str(uuid.uuid4()), now + FAMILY_TTL
    refresh_plain = new_token(32)
    db.session.add(
        RefreshToken(
            user_id=membership.user_id,
            workspace_id=membership.workspace_id,
            family_id=family_id,
            token_hash=hash_token(refresh_plain),
            expires_at=min(now + REFRESH_TTL, family_expires_at),
            family_expires_at=family_expires_at,
        )
    )
    db.session.flush()
    _cap_live_refresh_tokens(membership.user_id, now)
    access_token = encode_access_token(
        membership.user_id,
        membership.workspace_id,
        membership.role,
        family_id=family_id,
        not_after=family_expires_at,
        now=now,
    )
    return IssuedTokens(
        access_token=access_token,
        refresh_token=refresh_plain,
        expires_in=min(int(ACCESS_TTL.total_seconds()), int((family_expires_at - now).total_seconds())),
        workspace=membership.workspace,
        role=membership.role,
    )


def _cap_live_refresh_tokens(user_id: int, now: datetime) -> None:
    live_ids = db.session.scalars(
        select(RefreshToken.id)
        .where(
            RefreshToken.user_id == user_id,
            RefreshToken.used_at.is_(None),
            RefreshToken.revoked_at.is_(None),
            RefreshToken.expires_at > now,
        )
        .order_by(RefreshToken.created_at.desc(), RefreshToken.id.desc())
    ).all()
    surplus = live_ids[MAX_LIVE_REFRESH_TOKENS:]
    if surplus:
        db.session.execute(
            update(RefreshToken).where(RefreshToken.id.in_(surplus)).values(revoked_at=now),
            execution_options={"synchronize_session": False},
        )


def revoke_refresh_family(family_id: str) -> int:
    """Revoke every token of ``family_id`` that is not revoked yet; return how many."""
    result = db.session.execute(
        update(RefreshToken)
        .where(RefreshToken.family_id == family_id, RefreshToken.revoked_at.is_(None))
        .values(revoked_at=utcnow()),
        execution_options={"synchronize_session": False},
    )
    return result.rowcount or 0


def rotate_refresh_token(plaintext: str, *, workspace_slug: str | None = None) -> IssuedTokens:
    """Consume ``plaintext`` and issue the next pair, for ``workspace_slug`` when it names another workspace.

    Raises Unauthorized for unknown, revoked or expired tokens, RefreshTokenReplayed (after revoking
    the family) for a consumed one, and NotFound when the user is not a member of ``workspace_slug``.
    """
    now = utcnow()
    token = db.session.scalar(
        select(RefreshToken).where(RefreshToken.token_hash == hash_token(plaintext)).with_for_update()
    )
    if token is None or token.revoked_at is not None:
        raise Unauthorized("The refresh token is not valid.")
    if token.used_at is not None:
        revoked = revoke_refresh_family(token.family_id)
        log_security_event(
            "refresh_token_replayed", user_id=token.user_id, workspace_id=token.workspace_id, revoked=revoked
        )
        raise RefreshTokenReplayed("The refresh token was already used; sign in again.")
    if token.expires_at <= now:
        raise Unauthorized("The refresh token has expired; sign in again.")
    current = load_active_membership(token.user_id, token.workspace_id)
    if current is None:
        raise Unauthorized("The refresh token is no longer valid for this workspace.")
    if workspace_slug and workspace_slug != current.workspace.slug:
        target = db.session.scalar(
            select(Membership)
            .join(Workspace, Workspace.id == Membership.workspace_id)
            .where(Workspace.slug == workspace_slug, Membership.user_id == token.user_id)
        )
        if target is None:
            raise NotFound("No workspace with that slug among yours.", fields={"workspace": ["Not found."]})
        token.used_at = now
        return issue_token_pair(target)
    token.used_at = now
    return issue_token_pair(current, family_id=token.family_id, family_expires_at=token.family_expires_at)


def find_refresh_family(user_id: int, plaintext: str) -> str | None:
    """Return the family id of ``plaintext`` when it belongs to ``user_id``, else None."""
    return db.session.scalar(
        select(RefreshToken.family_id).where(
            RefreshToken.token_hash == hash_token(plaintext), RefreshToken.user_id == user_id
        )
    )
