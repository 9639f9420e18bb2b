"""Disconnect and reconnect revoke the old grant at the CRM; a failed revoke never blocks a disconnect."""

from __future__ import annotations

import logging

import pytest

from morket.crm import service
from tests.crm.test_connections import _connected, _plain_tokens, _row, owner_client  # noqa: F401 - fixture
from tests.factories import csrf_token

TOKEN_PATHS = {"hubspot": "/oauth/v1/token", "salesforce": "/services/oauth2/token"}
CLIENTS = {
    "hubspot": ("sandbox-morket-hubspot", "sandbox-hubspot-secret-0001"),
    "salesforce": ("sandbox-morket-salesforce", "sandbox-salesforce-secret-0001"),
}


def refreshes(crm, provider: str, refresh_token: str) -> bool:
    """Whether the CRM still trades ``refresh_token`` for an access token."""
    client_id, secret = CLIENTS[provider]
    resp = crm.http.post(
        f"{crm.url(provider)}{TOKEN_PATHS[provider]}",
        data={"grant_type": "refresh_token", "refresh_token": refresh_token, "client_id": client_id,
              "client_secret": secret},
    )  # fmt: skip
    return resp.status_code == 200


def _disconnect(client, workspace, provider: str) -> str:
    token = csrf_token(client, f"/w/{workspace.slug}/connections")
    resp = client.post(f"/w/{workspace.slug}/connections/{provider}/disconnect", headers={"X-CSRFToken": token})
    assert resp.status_code == 303
    return client.get(resp.headers["Location"]).get_data(as_text=True)


@pytest.mark.parametrize("provider", ["hubspot", "salesforce"])
def test_reconnect_revokes_the_grant_it_replaces(owner_client, crm, db, provider):  # noqa: F811
    workspace, _owner, client = owner_client
    _old_access, old_refresh = _plain_tokens(workspace, _connected(client, crm, db, workspace, provider))
    assert refreshes(crm, provider, old_refresh)
    _new_access, new_refresh = _plain_tokens(workspace, _connected(client, crm, db, workspace, provider))
    assert new_refresh != old_refresh
    assert not refreshes(crm, provider, old_refresh)  # the replaced grant is dead at the CRM
    assert refreshes(crm, provider, new_refresh)  # and the new one lives
    assert crm.state(provider)["grants"]["revoke"] == 1
    assert service.describe_objects(workspace, provider)  # the connection works on its new tokens


@pytest.mark.parametrize("provider", ["hubspot", "salesforce"])
def test_disconnect_kills_the_refresh_token(owner_client, crm, db, provider):  # noqa: F811
    workspace, _owner, client = owner_client
    _access, refresh = _plain_tokens(workspace, _connected(client, crm, db, workspace, provider))
    page = _disconnect(client, workspace, provider)
    assert "access was revoked" in page
    assert _row(db, workspace, provider) is None
    assert not refreshes(crm, provider, refresh)


@pytest.mark.parametrize("provider", ["hubspot", "salesforce"])
def test_a_failed_revoke_still_disconnects_and_says_so(owner_client, crm, db, sandbox_server, caplog, provider):  # noqa: F811
    workspace, _owner, client = owner_client
    access, refresh = _plain_tokens(workspace, _connected(client, crm, db, workspace, provider))
    caplog.set_level(logging.INFO)
    sandbox_server.configure(provider, error_rate=1, fail_status=503)  # the CRM is down
    try:
        page = _disconnect(client, workspace, provider)
    finally:
        sandbox_server.configure(provider, error_rate=0)
    label = {"hubspot": "HubSpot", "salesforce": "Salesforce"}[provider]
    assert f"{label} did not confirm the revoke" in page
    assert _row(db, workspace, provider) is None  # the tokens are gone from Morket anyway
    assert f"{label} revoke not confirmed: HTTP 503" in caplog.text
    assert access not in caplog.text and refresh not in caplog.text
    assert crm.state(provider)["grants"]["revoke"] == 0
    assert refreshes(crm, provider, refresh)  # which is why the page tells the user to remove the app there


@pytest.mark.parametrize(("provider", "status"), [("hubspot", 404), ("salesforce", 400)])
def test_a_refused_revoke_on_reconnect_does_not_stop_the_reconnect(owner_client, crm, db, caplog, provider, status):  # noqa: F811
    workspace, _owner, client = owner_client
    _access, old_refresh = _plain_tokens(workspace, _connected(client, crm, db, workspace, provider))
    crm.reset(provider)  # the CRM no longer knows the old grant: its revoke is refused
    caplog.set_level(logging.INFO)
    row = _connected(client, crm, db, workspace, provider)
    _new_access, new_refresh = _plain_tokens(workspace, row)
    assert new_refresh != old_refresh and refreshes(crm, provider, new_refresh)
    label = {"hubspot": "HubSpot", "salesforce": "Salesforce"}[provider]
    assert f"{label} revoke not confirmed: HTTP {status}" in caplog.text and old_refresh not in caplog.text
