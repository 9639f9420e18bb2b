"""API sign-in: exchange credentials for a token pair, rotate refresh tokens, log out."""

from __future__ import annotations

from morket.accounts.service import authenticate
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
from morket.core.errors import Forbidden, Locked, NotFound, Unauthorized, ValidationFailed
from morket.core.ratelimit import AUTH_LIMIT, client_ip
from morket.core.tenancy import load_membership
from morket.extensions import db

TAG = "Authentication"
NOT_YOUR_WORKSPACE = "You are not a member of a workspace with that slug."


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
    errors=(401, 403, 404, 423),
)
def issue_token(body: schemas.TokenRequest) -> schemas.TokenPairOut:
    """Check the credentials exactly as the log-in page does (lockout included), then issue tokens for ``workspace``."""
    try:
        user = authenticate(body.email, body.password, client_ip())
    except (Unauthorized, Locked, Forbidden):
        db.session.commit()  # keep the failure that counts towards the lockout
        raise
    found = load_membership(body.workspace, user.id)
    if found is None:
        db.session.commit()
        raise NotFound(NOT_YOUR_WORKSPACE, fields={"workspace": [NOT_YOUR_WORKSPACE]})
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
    errors=(401, 404),
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
    summary="Log out: revoke the refresh token's family (its access tokens included) and the bearer access token",
    tag=TAG,
    body=schemas.LogoutRequest,
    response=schemas.LogoutOut,
    limit=AUTH_LIMIT,
    limit_key=_by_ip,
    errors=(403,),
)
def logout(principal: Principal, body: schemas.LogoutRequest) -> schemas.LogoutOut:
    """Revoke the refresh family (which refuses its access tokens) and deny-list the bearer token until it expires."""
    if principal.user is None or principal.jti is None:
        raise Forbidden("API keys do not log out; revoke the key instead.")
    family_id = find_refresh_family(principal.user.id, body.refresh_token)
    if family_id is None:
        raise ValidationFailed("Unknown refresh token.", fields={"refresh_token": ["Unknown refresh token."]})
    revoke_refresh_family(family_id)
    db.session.commit()
    deny_jti(principal.jti, principal.exp or 0)
    return schemas.LogoutOut(logged_out=True)
