"""CRM connections over the JSON API: their status, and disconnecting (which revokes at the CRM).

Connecting needs a browser (the CRM's consent page), so it has no API operation. Tokens are
never part of any answer.
"""

from __future__ import annotations

from datetime import datetime

from pydantic import Field

from morket.api.routing import Principal, api_route, user_actor
from morket.api.schemas import Out
from morket.crm import push_api, service  # noqa: F401 - push_api: mappings and pushes register with this module
from morket.crm.models import CrmConnection
from morket.crm.providers import SPECS
from morket.extensions import db

TAG = "CRM connections"


class ConnectionOut(Out):
    """One CRM and the workspace's connection to it (the fields after ``connected`` are null when not connected)."""

    provider: str = Field(description="hubspot or salesforce.")
    label: str
    connected: bool
    account_id: str | None = Field(default=None, description="HubSpot portal id or Salesforce org id.")
    account_name: str | None = None
    scopes: list[str] = Field(default_factory=list)
    connected_at: datetime | None = None
    last_sync_at: datetime | None = None
    healthy: bool | None = Field(default=None, description="False when the CRM's last answer was an error.")
    last_error: str | None = None
    last_error_at: datetime | None = None


class DisconnectedOut(Out):
    provider: str
    revoked: bool = Field(description="Whether the CRM confirmed the revoke (the tokens are deleted either way).")


def _out(provider: str, connection: CrmConnection | None) -> ConnectionOut:
    out = ConnectionOut(provider=provider, label=SPECS[provider].label, connected=connection is not None)
    if connection is not None:
        out.account_id, out.account_name = connection.account_id, connection.account_name
        out.scopes = list(connection.scopes)
        out.connected_at, out.last_sync_at = connection.created_at, connection.last_sync_at
        out.healthy = connection.last_error is None
        out.last_error, out.last_error_at = connection.last_error, connection.last_error_at
    return out


@api_route(
    "/crm/connections",
    "GET",
    summary="List CRM connections",
    tag=TAG,
    permission="crm.view",
    response=list[ConnectionOut],
)
def list_crm_connections(principal: Principal) -> list[ConnectionOut]:
    """Every CRM Morket connects to, with this workspace's connection status, account, scopes and health."""
    return [_out(name, c) for name, c in service.list_connections(principal.workspace).items()]


@api_route(
    "/crm/connections/<provider>",
    "DELETE",
    summary="Disconnect a CRM",
    tag=TAG,
    permission="crm.manage",
    response=DisconnectedOut,
)
def disconnect_crm(principal: Principal, provider: str) -> DisconnectedOut:
    """Revoke Morket's access at the CRM and delete its tokens. Needs a user's token."""
    revoked = service.disconnect(principal.workspace, user_actor(principal), provider)
    db.session.commit()
    return DisconnectedOut(provider=provider, revoked=revoked)


from morket.crm import pull_api  # noqa: E402, F401 - the pulls' operations, in a module of their own
