"""What the CRM sandboxes share: an OAuth 2.0 authorization server with a consent page, and the
admin knobs tests use.

The authorization-code flow as HubSpot and Salesforce run it: ``authorize`` shows a consent page
(Allow / Deny) and redirects back with ``code`` and ``state``, or ``error=access_denied``; the token
endpoint exchanges the code (checking ``redirect_uri``, the client secret and, when the authorize
request carried a ``code_challenge``, the PKCE S256 verifier) and refresh tokens; revoke ends a
refresh token and every access token it issued. Access tokens expire after ``token_ttl`` seconds.

Valid client ids and secrets start ``sandbox-`` (as the enrichment sandboxes' keys do). Admin
(``/_sandbox/<crm>/state``, ``/config``, ``/expire``): counts of records and grants, the token
lifetime and limits, and expiring every live access token at once (a session timeout).
"""

from __future__ import annotations

import base64
import hashlib
import html
import json
import secrets
import threading
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode, urlsplit

from werkzeug.wrappers import Request, Response

from morket.providers.sandboxes.server import json_response, key_is_valid

CODE_TTL = 300


@dataclass
class Grant:
    """One refresh token's grant: who, which scopes, and the access tokens it issued."""

    client_id: str
    scopes: list[str]
    account: dict[str, Any]
    revoked: bool = False


@dataclass
class AccessToken:
    grant: Grant
    expires_at: float


@dataclass
class OAuthState:
    """Codes, tokens and counters of one CRM sandbox; every method holds the lock."""

    token_ttl: float
    lock: threading.Lock = field(default_factory=threading.Lock)
    codes: dict[str, dict[str, Any]] = field(default_factory=dict)
    access: dict[str, AccessToken] = field(default_factory=dict)
    refresh: dict[str, Grant] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=lambda: {"authorization_code": 0, "refresh_token": 0, "revoke": 0})

    def issue_code(self, params: dict[str, str], account: dict[str, Any]) -> str:
        code = "code-" + secrets.token_urlsafe(24)
        with self.lock:
            self.codes[code] = {**params, "account": account, "expires_at": time.time() + CODE_TTL}
        return code

    def take_code(self, code: str) -> dict[str, Any] | None:
        with self.lock:
            found = self.codes.pop(code, None)
        if found is None or found["expires_at"] < time.time():
            return None
        return found

    def new_tokens(self, grant: Grant, *, with_refresh: bool, prefix: str) -> tuple[str, str | None]:
        access = f"{prefix}-at-" + secrets.token_urlsafe(32)
        refresh = f"{prefix}-rt-" + secrets.token_urlsafe(32) if with_refresh else None
        with self.lock:
            self.access[access] = AccessToken(grant, time.time() + self.token_ttl)
            if refresh:
                self.refresh[refresh] = grant
        return access, refresh

    def count(self, kind: str) -> None:
        with self.lock:
            self.counts[kind] += 1

    def grant_of_refresh(self, token: str) -> Grant | None:
        with self.lock:
            grant = self.refresh.get(token)
        return grant if grant is not None and not grant.revoked else None

    def check_access(self, token: str | None) -> tuple[AccessToken | None, str]:
        """The live token, or None and why not (``missing``, ``unknown``, ``expired``, ``revoked``)."""
        if not token:
            return None, "missing"
        with self.lock:
            found = self.access.get(token)
        if found is None:
            return None, "unknown"
        if found.grant.revoked:
            return None, "revoked"
        if found.expires_at <= time.time():
            return None, "expired"
        return found, ""

    def revoke(self, token: str) -> bool:
        """Revoke the grant a refresh or access token belongs to; False when the token is unknown."""
        with self.lock:
            grant = self.refresh.get(token) or (self.access[token].grant if token in self.access else None)
            if grant is None:
                return False
            grant.revoked = True
            self.counts["revoke"] += 1
            return True

    def expire_all(self) -> int:
        with self.lock:
            live = [t for t in self.access.values() if t.expires_at > time.time()]
            for token in live:
                token.expires_at = 0
            return len(live)


def bearer(request: Request) -> str | None:
    header = request.headers.get("Authorization", "")
    return header[7:].strip() or None if header[:7].lower() == "bearer " else None


def pkce_matches(challenge: str, method: str, verifier: str | None) -> bool:
    """Whether ``verifier`` answers ``challenge`` (S256, or plain)."""
    if not verifier:
        return False
    if method.upper() == "S256":
        digest = hashlib.sha256(verifier.encode()).digest()
        return secrets.compare_digest(base64.urlsafe_b64encode(digest).rstrip(b"=").decode(), challenge)
    return secrets.compare_digest(verifier, challenge)


def redirect(url: str, params: dict[str, str]) -> Response:
    glue = "&" if urlsplit(url).query else "?"
    return Response("", status=302, headers={"Location": url + glue + urlencode(params)})


def redirect_uri_ok(uri: str) -> bool:
    parts = urlsplit(uri)
    return parts.scheme in ("http", "https") and bool(parts.netloc) and not parts.fragment


def consent_page(*, provider: str, app_name: str, account: str, scopes: list[str], hidden: dict[str, str]) -> Response:
    """The provider's consent page: what the app asks for, Allow and Deny."""
    inputs = "".join(
        f'<input type="hidden" name="{html.escape(k)}" value="{html.escape(v)}">' for k, v in hidden.items()
    )
    items = "".join(f"<li><code>{html.escape(s)}</code></li>" for s in scopes)
    body = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(provider)} sandbox · Authorize</title>
<style>body{{font:15px system-ui,sans-serif;background:#f4f5f7;color:#1f2430;margin:0}}
main{{max-width:460px;margin:64px auto;background:#fff;border:1px solid #d9dce3;border-radius:10px;padding:28px}}
h1{{font-size:20px;margin:0 0 8px}}.tag{{display:inline-block;background:#fff4d6;color:#6b4e00;border-radius:4px;
padding:2px 8px;font-size:12px;margin-bottom:14px}}ul{{padding-left:20px}}.row{{display:flex;gap:10px;margin-top:22px}}
button{{font:inherit;padding:8px 18px;border-radius:6px;border:1px solid #b6bac4;background:#fff;cursor:pointer}}
button[value=allow]{{background:#1f5fd1;border-color:#1f5fd1;color:#fff}}</style></head>
<body><main><span class="tag">{html.escape(provider)} sandbox (demo data)</span>
<h1>{html.escape(app_name)} wants to connect to {html.escape(account)}</h1>
<p>It will be able to:</p><ul>{items}</ul>
<form method="post">{inputs}<div class="row">
<button type="submit" name="decision" value="allow">Allow</button>
<button type="submit" name="decision" value="deny">Deny</button></div></form></main></body></html>"""
    return Response(body, mimetype="text/html")


def parse_config(values: Any, allowed: dict[str, type]) -> dict[str, Any]:
    """The admin config body checked against ``allowed`` names and types; ValueError otherwise."""
    if not isinstance(values, dict):
        raise ValueError("send a JSON object")
    clean: dict[str, Any] = {}
    for key, value in values.items():
        if key not in allowed:
            raise ValueError(f"unknown setting {key!r}")
        try:
            clean[key] = allowed[key](value)
        except (TypeError, ValueError):
            raise ValueError(f"{key} must be a {allowed[key].__name__}") from None
        if isinstance(clean[key], int | float) and clean[key] < 0:
            raise ValueError(f"{key} must not be negative")
    return clean


def admin_answer(request: Request, state: OAuthState, counts: dict[str, Any], configure) -> Response | None:
    """The shared admin actions: ``state`` (GET), ``config`` (POST), ``expire`` (POST)."""
    action = request.path.rsplit("/", 1)[-1]
    if action == "state" and request.method == "GET":
        with state.lock:
            grants = dict(state.counts)
            live = sum(1 for t in state.access.values() if t.expires_at > time.time() and not t.grant.revoked)
        return json_response({"records": counts, "grants": grants, "live_access_tokens": live})
    if action == "config" and request.method == "POST":
        try:
            return json_response(configure(json.loads(request.get_data() or b"{}")))
        except ValueError as exc:
            return json_response({"error": str(exc)}, 400)
    if action == "expire" and request.method == "POST":
        return json_response({"expired": state.expire_all()})
    return None


def client_ok(client_id: str | None, client_secret: str | None) -> bool:
    return bool(client_id) and key_is_valid(client_secret)
