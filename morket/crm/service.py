"""CRM connections: connect over OAuth, disconnect (revoking at the CRM), read objects and fields.

The OAuth ``state`` is single use and bound three ways: to the browser session that started it
(the view keeps it in the session), to the user, and to the workspace and CRM it was started
for (kept server-side in Redis with the PKCE verifier, for ``STATE_SECONDS``). The callback's
workspace is the one the state names, never one from the URL, so a callback cannot attach a
connection to another workspace. Tokens are sealed before they reach the database and are
never logged, audited or shown (see ``tokens``).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from flask import current_app
from sqlalchemy import select

from morket.billing import service as billing
from morket.core.audit import record_audit
from morket.core.errors import Forbidden, MorketError, NotFound, ValidationFailed
from morket.core.jobs import redis_connection
from morket.core.logging import log_security_event
from morket.core.roles import can
from morket.crm import oauth, tokens
from morket.crm.client import CrmClient, CrmUnavailable, error_message
from morket.crm.models import CrmConnection
from morket.crm.providers import HUBSPOT, SPECS, CrmSpec, get_spec
from morket.extensions import db

if TYPE_CHECKING:
    from morket.accounts.models import User
    from morket.core.types import Workspace

STATE_SECONDS = 600
_STATE_KEY = "morket:crm-oauth:{}"
_SCHEMA_KEY = "morket:crm-schema:{}:{}"


class ConnectRefused(MorketError):
    """A callback that cannot be trusted or completed (bad state, denied, expired)."""

    status = 400
    code = "crm_connect_refused"


@dataclass(frozen=True)
class CrmField:
    """One field of a CRM object as the field mapping needs it."""

    name: str
    label: str
    type: str
    unique: bool
    external_id: bool
    writable: bool


@dataclass(frozen=True)
class CrmObjectSchema:
    name: str
    label: str
    fields: list[CrmField]

    @property
    def keys(self) -> list[CrmField]:
        """Fields a push can match records by (unique or external id, and writable)."""
        return [f for f in self.fields if (f.unique or f.external_id) and f.writable]


def _settings() -> dict[str, Any]:
    return current_app.config["MORKET"]


def spec_or_404(provider: str) -> CrmSpec:
    """The CRM called ``provider``, or NotFound."""
    spec = get_spec(provider)
    if spec is None:
        raise NotFound("No such CRM.")
    return spec


def _require(workspace: Workspace, actor: User | None, permission: str) -> None:
    from morket.workspaces.service import get_membership

    membership = get_membership(workspace, actor) if actor is not None else None
    if membership is None:
        raise NotFound("Workspace not found.")
    if not can(membership.role, permission):
        raise Forbidden("Your role in this workspace does not allow this.")


def list_connections(workspace: Workspace) -> dict[str, CrmConnection | None]:
    """Every CRM Morket knows, with the workspace's connection to it or None."""
    rows = db.session.scalars(select(CrmConnection).where(CrmConnection.workspace_id == workspace.id)).all()
    found = {row.provider: row for row in rows}
    return {name: found.get(name) for name in SPECS}


def connected_by_names(connections: dict[str, CrmConnection | None]) -> dict[int, str]:
    """The names of the people who connected ``connections``, by user id."""
    from morket.accounts.models import User

    ids = {c.connected_by_id for c in connections.values() if c is not None and c.connected_by_id}
    if not ids:
        return {}
    return {u.id: u.name or u.email for u in db.session.scalars(select(User).where(User.id.in_(ids)))}


def get_connection(workspace: Workspace, provider: str) -> CrmConnection | None:
    """The workspace's connection to ``provider``, or None."""
    return db.session.scalars(
        select(CrmConnection).where(CrmConnection.workspace_id == workspace.id, CrmConnection.provider == provider)
    ).first()


def start_connect(workspace: Workspace, actor: User, provider: str, redirect_uri: str) -> tuple[str, str]:
    """Begin connecting ``provider``: return (the CRM's consent URL, the state to keep in the session)."""
    _require(workspace, actor, "crm.manage")
    spec = spec_or_404(provider)
    billing.check_feature(workspace.id, "crm_sync")  # the plan must include CRM sync
    settings = _settings()
    if not spec.configured(settings):
        raise ValidationFailed(f"{spec.label} is not set up on this Morket server (no OAuth app); ask its operator.")
    state, verifier = oauth.new_state()
    pending = {"workspace_id": workspace.id, "provider": provider, "user_id": actor.id, "verifier": verifier,
               "redirect_uri": redirect_uri}  # fmt: skip
    redis_connection().set(_STATE_KEY.format(state), json.dumps(pending), ex=STATE_SECONDS)
    return oauth.authorization_url(spec, settings, redirect_uri, state, verifier), state


def complete_connect(
    actor: User, provider: str, *, state: str, session_states: list[str], code: str | None, error: str | None
) -> tuple[Workspace, CrmConnection]:
    """Finish the OAuth callback: check the state, trade the code, store the sealed tokens.

    ConnectRefused (with what to do next) for a state this browser did not start, an expired
    or reused one, a denied consent, or a code the CRM refuses.
    """
    from morket.workspaces.models import Workspace as WorkspaceModel

    spec = spec_or_404(provider)
    raw = redis_connection().getdel(_STATE_KEY.format(state)) if state else None
    pending = json.loads(raw) if raw else None
    if pending is None or state not in session_states:
        log_security_event("crm_oauth_state_rejected", provider=provider, known=pending is not None)
        raise ConnectRefused(
            f"This {spec.label} sign-in could not be matched to a connection you started in this browser "
            "(it expired, was already used, or came from another session). Nothing was connected; start again "
            "from the Connections page."
        )
    if pending["user_id"] != actor.id or pending["provider"] != provider:
        log_security_event("crm_oauth_state_rejected", provider=provider, reason="user or provider mismatch")
        raise ConnectRefused("This sign-in was started by someone else. Nothing was connected.")
    workspace = db.session.get(WorkspaceModel, pending["workspace_id"])
    if workspace is None:
        raise ConnectRefused("The workspace this connection was for no longer exists.")
    _require(workspace, actor, "crm.manage")
    if error:
        reason = "you chose Deny" if error == "access_denied" else f"{spec.label} answered {error!r}"
        raise ConnectRefused(f"{spec.label} was not connected: {reason}. You can connect it any time.")
    if not code:
        raise ConnectRefused(f"{spec.label} did not send an authorization code. Nothing was connected; try again.")
    try:
        found = oauth.exchange_code(spec, _settings(), pending["redirect_uri"], code, pending["verifier"])
    except oauth.CrmAuthError as exc:
        raise ConnectRefused(exc.message) from None
    connection = get_connection(workspace, provider) or CrmConnection(workspace_id=workspace.id, provider=provider)
    _revoke_previous(workspace, spec, connection, found)
    connection.account_id = found.account_id[:64]
    connection.account_name = found.account_name[:255]
    connection.scopes = [s[:120] for s in found.scopes]
    connection.instance_url = found.instance_url
    connection.access_ciphertext = tokens.seal(workspace.id, provider, "access", found.access_token)
    connection.refresh_ciphertext = (
        tokens.seal(workspace.id, provider, "refresh", found.refresh_token) if found.refresh_token else None
    )
    connection.key_fingerprint = tokens.fingerprint()
    connection.expires_at = found.expires_at
    connection.token_version = (connection.token_version or 0) + 1
    connection.connected_by_id = actor.id
    connection.last_error = None
    connection.last_error_at = None
    db.session.add(connection)
    db.session.flush()
    redis_connection().delete(*(_SCHEMA_KEY.format(connection.id, o.name) for o in spec.objects))
    record_audit(workspace, actor, "crm.connect", f"{provider}:{connection.account_id}", scopes=connection.scopes)
    return workspace, connection


def _revoke_previous(workspace: Workspace, spec: CrmSpec, connection: CrmConnection, found: oauth.Tokens) -> bool:
    """On a reconnect, revoke the grant being replaced (unless the CRM handed the same refresh token back).

    A revoke that fails is logged (never with the token) and does not stop the reconnect: the new
    tokens replace the old ones either way.
    """
    if connection.id is None or not connection.access_ciphertext:
        return False
    try:
        access = tokens.unseal(workspace.id, spec.name, "access", connection.access_ciphertext)
        refresh = (
            tokens.unseal(workspace.id, spec.name, "refresh", connection.refresh_ciphertext)
            if connection.refresh_ciphertext
            else None
        )
    except tokens.NotConnected:
        return False
    if (refresh or access) in (found.refresh_token, found.access_token):
        return False
    return oauth.revoke(spec, _settings(), refresh, access)


def disconnect(workspace: Workspace, actor: User, provider: str) -> bool:
    """Revoke the grant at the CRM and delete the tokens; return whether the CRM confirmed the revoke.

    The tokens are deleted either way: a CRM that cannot be reached must not keep Morket connected.
    """
    _require(workspace, actor, "crm.manage")
    spec = spec_or_404(provider)
    connection = get_connection(workspace, provider)
    if connection is None:
        raise NotFound(f"{spec.label} is not connected.")
    try:
        access = tokens.unseal(workspace.id, provider, "access", connection.access_ciphertext)
        refresh = (
            tokens.unseal(workspace.id, provider, "refresh", connection.refresh_ciphertext)
            if connection.refresh_ciphertext
            else None
        )
        revoked = oauth.revoke(spec, _settings(), refresh, access)
    except tokens.NotConnected:
        revoked = False
    redis_connection().delete(*(_SCHEMA_KEY.format(connection.id, o.name) for o in spec.objects))
    record_audit(workspace, actor, "crm.disconnect", f"{provider}:{connection.account_id}", revoked=revoked)
    db.session.delete(connection)
    db.session.flush()
    return revoked


def describe_objects(workspace: Workspace, provider: str) -> list[CrmObjectSchema]:
    """Each object Morket writes in the connected CRM, with its fields (cached briefly per connection).

    NotFound when the CRM is not connected; CrmUnavailable (its reason kept as the connection's
    health) when the CRM answers with an error.
    """
    spec = spec_or_404(provider)
    connection = get_connection(workspace, provider)
    if connection is None:
        raise NotFound(f"{spec.label} is not connected.")
    settings = _settings()
    redis = redis_connection()
    found: list[CrmObjectSchema] = []
    with CrmClient(connection.id, settings) as client:
        for obj in spec.objects:
            key = _SCHEMA_KEY.format(connection.id, obj.name)
            cached = redis.get(key)
            if cached:
                data = json.loads(cached)
                found.append(CrmObjectSchema(data["name"], data["label"], [CrmField(**f) for f in data["fields"]]))
                continue
            schema = _describe(client, provider, obj.name, obj.label)
            redis.set(key, json.dumps(asdict(schema)), ex=int(settings["CRM_SCHEMA_CACHE_SECONDS"]))
            found.append(schema)
    if connection.last_error:
        tokens.record_error(connection.id, None)
    return found


def _describe(client: CrmClient, provider: str, name: str, label: str) -> CrmObjectSchema:
    path = f"/crm/v3/properties/{name}" if provider == HUBSPOT else f"/sobjects/{name}/describe"
    response = client.request("GET", path)
    if response.status_code != 200:
        message = f"Reading {label} fields failed: {error_message(response) or f'HTTP {response.status_code}'}"
        tokens.record_error(client.connection_id, message)
        raise CrmUnavailable(message)
    body = response.json()
    if provider == HUBSPOT:
        fields = [
            CrmField(
                name=p["name"],
                label=p.get("label") or p["name"],
                type=p.get("type") or "string",
                unique=bool(p.get("hasUniqueValue")),
                external_id=False,
                writable=not (p.get("modificationMetadata") or {}).get("readOnlyValue", False),
            )
            for p in body.get("results", [])
        ]
    else:
        fields = [
            CrmField(
                name=f["name"],
                label=f.get("label") or f["name"],
                type=f.get("type") or "string",
                unique=bool(f.get("unique")),
                external_id=bool(f.get("externalId")),
                writable=bool(f.get("updateable") or f.get("createable")),
            )
            for f in body.get("fields", [])
        ]
    return CrmObjectSchema(name, label, sorted(fields, key=lambda f: (not (f.unique or f.external_id), f.label)))
