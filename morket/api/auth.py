"""API sign-in: exchange credentials for a token pair, rotate refresh tokens, log out."""

from __future__ import annotations

from morket.accounts.service import get_user_by_email
from morket.api import schemas
from morket.api.routing import Principal, api_route
from morket.api.tokens import (
    RefreshTokenReplayed,
    deny_jti,
    find_refresh_family,
    issue_token_pair,
    revoke_refresh_family,
    rotate_refresh_token,
)
from morket.core.errors import Unauthorized, ValidationFailed
from morket.core.logging import log_security_event
from morket.core.ratelimit import AUTH_LIMIT, client_ip
from morket.core.security import verify_password
from morket.core.tenancy import load_membership
from morket.extensions import db

TAG = "Authentication"
INVALID_LOGIN = "Email, password or workspace is not correct."


def _by_ip() -> str:
    return f"ip:{client_ip()}"


def _pair_out(issued) -> schemas.TokenPairOut:
    return schemas.TokenPairOut(
        access_token=issued.access_token,
        expires_in=issued.expires_in,
        refresh_token=issued.refresh_token,
        workspace=schemas.WorkspaceOut.model_validate(issued.workspace),
        role=issued.role,
    )


@api_route(
    "/auth/token",
    "POST",
    summary="Sign in and get a token pair for one workspace",
    tag=TAG,
    body=schemas.TokenRequest,
    response=schemas.TokenPairOut,
    authenticated=False,
    limit=AUTH_LIMIT,
    limit_key=_by_ip,
)
def issue_token(body: schemas.TokenRequest) -> schemas.TokenPairOut:
    """Check the credentials like the log-in page does and issue tokens scoped to ``workspace``."""
    user = get_user_by_email(body.email)
    password_ok = verify_password(user.password_hash if user else None, body.password)
    if user is None or not password_ok or not user.is_active:
        log_security_event("api_login_failed", ip=client_ip(), user_id=user.id if user else None)
        raise Unauthorized(INVALID_LOGIN)
    found = load_membership(body.workspace, user.id)
    if found is None:
        log_security_event("api_login_failed", ip=client_ip(), user_id=user.id, reason="not a member")
        raise Unauthorized(INVALID_LOGIN)
    issued = issue_token_pair(found[1])
    db.session.commit()
    return _pair_out(issued)


@api_route(
    "/auth/refresh",
    "POST",
    summary="Rotate a refresh token (optionally switching workspace)",
    tag=TAG,
    body=schemas.RefreshRequest,
    response=schemas.TokenPairOut,
    authenticated=False,
    limit=AUTH_LIMIT,
    limit_key=_by_ip,
)
def refresh_token(body: schemas.RefreshRequest) -> schemas.TokenPairOut:
    """Consume the refresh token and issue the next pair; a reused token revokes its whole family."""
    try:
        issued = rotate_refresh_token(body.refresh_token, workspace_slug=body.workspace)
    except RefreshTokenReplayed:
        db.session.commit()  # keep the family revoked although the answer is an error
        raise
    db.session.commit()
    return _pair_out(issued)


@api_route(
    "/auth/logout",
    "POST",
    summary="Log out: revoke the refresh token's family and the bearer access token",
    tag=TAG,
    body=schemas.LogoutRequest,
    response=schemas.LogoutOut,
    limit=AUTH_LIMIT,
    limit_key=_by_ip,
)
def logout(principal: Principal, body: schemas.LogoutRequest) -> schemas.LogoutOut:
    """Revoke the refresh family and deny-list the access token until it expires."""
    if principal.user is None or principal.jti is None:
        raise ValidationFailed("API keys do not log out; revoke the key instead.")
    family_id = find_refresh_family(principal.user.id, body.refresh_token)
    if family_id is None:
        raise ValidationFailed("Unknown refresh token.", fields={"refresh_token": ["Unknown refresh token."]})
    revoke_refresh_family(family_id)
    db.session.commit()
    deny_jti(principal.jti, principal.exp or 0)
    return schemas.LogoutOut(logged_out=True)
