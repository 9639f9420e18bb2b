"""OAuth 2.0 with each CRM through authlib: the authorize URL (state, PKCE S256), the code
exchange, refresh and revoke, and who the connected account is.

authlib's protocol client (``authlib.oauth2.client.OAuth2Client``) builds the requests and parses
the token answers; it sends them through one plain ``httpx.Client`` with a timeout (authlib's own
httpx integration now warns that it is deprecated in favour of a fork of httpx). Tokens never
reach a log: httpx logs every URL at INFO, and HubSpot puts tokens in two of its paths, so
``install_log_filter`` masks those.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Generator, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import httpx
from authlib.common.security import generate_token
from authlib.oauth2.auth import ClientAuth
from authlib.oauth2.base import OAuth2Error
from authlib.oauth2.client import OAuth2Client

from morket.core.db import utcnow
from morket.core.errors import MorketError
from morket.crm.providers import HUBSPOT, CrmSpec, instance_url_allowed

log = logging.getLogger(__name__)

TIMEOUT = httpx.Timeout(15.0, connect=5.0)
_TOKEN_IN_PATH = re.compile(r"(/oauth/v1/(?:access|refresh)-tokens/)[^\s\"/?]+")


class CrmAuthError(MorketError):
    """The CRM refused a grant: a code that failed, a refresh token that was revoked."""

    status = 502
    code = "crm_auth_failed"


class _MaskTokenPaths(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if record.args:
            record.args = tuple(
                _TOKEN_IN_PATH.sub(r"\1[redacted]", str(a)) if "-tokens/" in str(a) else a for a in record.args
            )
        return True


def install_log_filter() -> None:
    """Mask HubSpot tokens in httpx's request log lines (idempotent)."""
    logger = logging.getLogger("httpx")
    if not any(isinstance(f, _MaskTokenPaths) for f in logger.filters):
        logger.addFilter(_MaskTokenPaths())


class _HttpxClientAuth(httpx.Auth, ClientAuth):
    """authlib's client authentication (``client_secret_post``) applied to an httpx request."""

    requires_request_body = True

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        url, headers, body = self.prepare(request.method, str(request.url), request.headers, request.content)
        headers["Content-Length"] = str(len(body))
        yield httpx.Request(request.method, url, headers=headers, content=body)


class _Client(OAuth2Client):
    client_auth_class = _HttpxClientAuth


@dataclass
class Tokens:
    """What a grant gave: the tokens, their lifetime and who the account is."""

    access_token: str
    refresh_token: str | None
    expires_at: datetime | None
    scopes: list[str] = field(default_factory=list)
    account_id: str = ""
    account_name: str = ""
    instance_url: str | None = None

    def __repr__(self) -> str:  # never print a token, even in a traceback's locals
        return f"Tokens(account_id={self.account_id!r}, scopes={self.scopes!r}, expires_at={self.expires_at!r})"


def _client(spec: CrmSpec, settings: Mapping[str, Any], redirect_uri: str | None = None) -> _Client:
    return _Client(
        httpx.Client(timeout=TIMEOUT),
        client_id=spec.setting(settings, "CLIENT_ID"),
        client_secret=spec.setting(settings, "CLIENT_SECRET"),
        token_endpoint_auth_method="client_secret_post",  # noqa: S106 - a method name, not a secret
        scope=" ".join(spec.scopes),
        redirect_uri=redirect_uri,
        code_challenge_method="S256",
    )


def new_state() -> tuple[str, str]:
    """A fresh ``state`` and PKCE ``code_verifier``."""
    return generate_token(40), generate_token(64)


def authorization_url(
    spec: CrmSpec,
    settings: Mapping[str, Any],
    redirect_uri: str,
    state: str,
    verifier: str,
) -> str:
    """The CRM's consent page URL for this state and verifier (S256 challenge)."""
    client = _client(spec, settings, redirect_uri)
    try:
        url, _ = client.create_authorization_url(spec.authorize_url(settings), state=state, code_verifier=verifier)
    finally:
        client.session.close()
    return url


def _expiry(token: Mapping[str, Any]) -> datetime | None:
    seconds = token.get("expires_in")
    if seconds is None:
        return None  # Salesforce: the session lasts the org's timeout; refreshed on a 401
    return utcnow() + timedelta(seconds=max(0, int(seconds)))


def _grant(client: _Client, spec: CrmSpec, call, what: str) -> dict[str, Any]:
    try:
        token = call()
    except OAuth2Error as exc:
        reason = exc.description or exc.error or "refused"
        raise CrmAuthError(f"{spec.label} refused the {what}: {reason}.") from None
    except httpx.HTTPError as exc:
        raise CrmAuthError(f"Could not reach {spec.label} ({type(exc).__name__}); try again.") from None
    finally:
        client.session.close()
    if not isinstance(token, Mapping) or not token.get("access_token"):
        message = token.get("message") if isinstance(token, Mapping) else None
        raise CrmAuthError(f"{spec.label} refused the {what}: {message or 'no access token in the answer'}.")
    return dict(token)


def exchange_code(
    spec: CrmSpec,
    settings: Mapping[str, Any],
    redirect_uri: str,
    code: str,
    verifier: str,
) -> Tokens:
    """Trade an authorization code (and the PKCE verifier) for tokens, and learn the account."""
    client = _client(spec, settings, redirect_uri)
    token = _grant(
        client,
        spec,
        lambda: client.fetch_token(spec.token_url(settings), code=code, code_verifier=verifier),
        "authorization",
    )
    found = Tokens(
        access_token=token["access_token"],
        refresh_token=token.get("refresh_token"),
        expires_at=_expiry(token),
        scopes=list(token.get("scopes") or str(token.get("scope") or "").split()),
    )
    if spec.name == HUBSPOT:
        _hubspot_account(spec, settings, found)
    else:
        _salesforce_account(spec, settings, found, token)
    return found


def refresh(spec: CrmSpec, settings: Mapping[str, Any], refresh_token: str) -> Tokens:
    """A new access token for ``refresh_token``; CrmAuthError when the CRM refuses it."""
    client = _client(spec, settings)
    token = _grant(
        client,
        spec,
        lambda: client.refresh_token(spec.token_url(settings), refresh_token=refresh_token),
        "refresh",
    )
    return Tokens(
        access_token=token["access_token"],
        refresh_token=token.get("refresh_token") or refresh_token,
        expires_at=_expiry(token),
    )


def revoke(
    spec: CrmSpec,
    settings: Mapping[str, Any],
    refresh_token: str | None,
    access_token: str,
) -> bool:
    """Revoke the grant at the CRM; False when the CRM could not be reached or refused."""
    token = refresh_token or access_token
    try:
        with httpx.Client(timeout=TIMEOUT) as http:
            if spec.name == HUBSPOT:
                resp = http.delete(f"{spec.setting(settings, 'API_URL')}/oauth/v1/refresh-tokens/{token}")
            else:
                resp = http.post(
                    f"{spec.setting(settings, 'LOGIN_URL')}/services/oauth2/revoke",
                    data={"token": token},
                )
    except httpx.HTTPError as exc:
        log.warning("%s revoke failed: %s", spec.label, type(exc).__name__)  # never the token
        return False
    if resp.status_code not in (200, 204):
        log.warning("%s revoke not confirmed: HTTP %s", spec.label, resp.status_code)
        return False
    return True


def _hubspot_account(spec: CrmSpec, settings: Mapping[str, Any], found: Tokens) -> None:
    url = f"{spec.setting(settings, 'API_URL')}/oauth/v1/access-tokens/{found.access_token}"
    try:
        with httpx.Client(timeout=TIMEOUT) as http:
            resp = http.get(url)
        info = resp.json() if resp.status_code == 200 else {}
    except (httpx.HTTPError, ValueError):
        info = {}
    if not info.get("hub_id"):
        raise CrmAuthError("HubSpot did not say which portal this is; try connecting again.")
    found.account_id = str(info["hub_id"])
    found.account_name = str(info.get("hub_domain") or info["hub_id"])
    found.scopes = list(info.get("scopes") or found.scopes)


def _salesforce_account(spec: CrmSpec, settings: Mapping[str, Any], found: Tokens, token: Mapping[str, Any]) -> None:
    instance_url = str(token.get("instance_url") or "").rstrip("/")
    if not instance_url_allowed(instance_url, settings):
        raise CrmAuthError("Salesforce named an instance outside salesforce.com; the connection was not saved.")
    found.instance_url = instance_url
    identity_url = str(token.get("id") or "")
    parts = identity_url.rstrip("/").split("/")
    if "/id/" not in identity_url or len(parts) < 2 or not instance_url_allowed(identity_url, settings):
        raise CrmAuthError("Salesforce did not say which org this is; try connecting again.")
    found.account_id = parts[-2]
    try:
        with httpx.Client(timeout=TIMEOUT) as http:
            resp = http.get(identity_url, headers={"Authorization": f"Bearer {found.access_token}"})
        info = resp.json() if resp.status_code == 200 else {}
    except (httpx.HTTPError, ValueError):
        info = {}
    found.account_name = str(info.get("username") or found.account_id)
