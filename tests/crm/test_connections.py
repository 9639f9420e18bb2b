"""Connecting HubSpot and Salesforce over OAuth against the sandboxes, as a user would."""

from __future__ import annotations

import logging
from datetime import timedelta

import pytest
from sqlalchemy import text

from morket.core.db import utcnow
from morket.crm import service, tokens
from morket.crm.client import CrmClient
from morket.crm.models import CrmConnection
from tests.crm.conftest import connect
from tests.factories import MembershipFactory, csrf_token, login, workspace_with_owner


@pytest.fixture
def owner_client(client, db):
    workspace, owner = workspace_with_owner(name="Acme Revenue")
    db.session.flush()
    login(client, owner)
    return workspace, owner, client


def _row(db, workspace, provider) -> CrmConnection:
    db.session.expire_all()
    return service.get_connection(workspace, provider)


def _plain_tokens(workspace, row) -> tuple[str, str | None]:
    access = tokens.unseal(workspace.id, row.provider, "access", row.access_ciphertext)
    refresh = (
        tokens.unseal(workspace.id, row.provider, "refresh", row.refresh_ciphertext) if row.refresh_ciphertext else None
    )
    return access, refresh


@pytest.mark.parametrize(
    ("provider", "account", "scope"),
    [
        ("hubspot", "morket-demo.hubspot.com", "crm.objects.contacts.write"),
        ("salesforce", "demo.admin@morket-demo.example", "refresh_token"),
    ],
)
def test_connect_shows_account_and_scopes_and_seals_tokens(owner_client, crm, db, provider, account, scope, caplog):
    workspace, _owner, client = owner_client
    caplog.set_level(logging.DEBUG)
    resp, asked = connect(client, crm, workspace.slug, provider)
    assert resp.status_code == 303
    assert asked["code_challenge_method"] == ["S256"] and asked["code_challenge"][0]
    page = client.get(resp.headers["Location"]).get_data(as_text=True)
    assert f"Connected {'HubSpot' if provider == 'hubspot' else 'Salesforce'} ({account})" in page
    assert account in page and scope in page
    row = _row(db, workspace, provider)
    access, refresh = _plain_tokens(workspace, row)
    assert access and refresh
    # The row holds ciphertext only: neither token appears in any column as text or bytes.
    raw = db.session.execute(
        text("SELECT crm_connections::text FROM crm_connections WHERE id = :id"), {"id": row.id}
    ).scalar_one()
    for secret in (access, refresh):
        assert secret not in raw and secret.encode().hex() not in raw
        assert secret not in page
        assert secret not in caplog.text
    assert crm.state(provider)["grants"]["authorization_code"] == 1


def test_deny_on_the_consent_page_says_so_and_connects_nothing(owner_client, crm, db):
    workspace, _owner, client = owner_client
    resp, _ = connect(client, crm, workspace.slug, "hubspot", decision="deny")
    assert resp.status_code == 400
    assert "HubSpot was not connected: you chose Deny" in resp.get_data(as_text=True)
    assert _row(db, workspace, "hubspot") is None


def test_a_state_this_browser_did_not_start_is_refused(owner_client, crm, db, new_client):
    workspace, owner, client = owner_client
    token = csrf_token(client, f"/w/{workspace.slug}/connections")
    authorize = client.post(f"/w/{workspace.slug}/connections/hubspot/connect", headers={"X-CSRFToken": token})
    back = crm.consent(authorize.headers["Location"])
    path = back.split("localhost", 1)[1]
    # The same user in another browser (another session) cannot finish this sign-in.
    other = new_client()
    login(other, owner)
    refused = other.get(path)
    assert refused.status_code == 400
    assert "could not be matched to a connection you started in this browser" in refused.get_data(as_text=True)
    # A forged state is refused too, and the state cannot be replayed after a refusal.
    forged = client.get(path.replace("state=", "state=x"))
    assert forged.status_code == 400
    assert client.get(path).status_code == 400
    assert _row(db, workspace, "hubspot") is None
    assert crm.state("hubspot")["grants"]["authorization_code"] == 0


def test_another_workspaces_sign_in_cannot_attach_here(crm, db, new_client):
    ours, our_owner = workspace_with_owner(name="Ours")
    theirs, their_owner = workspace_with_owner(name="Theirs")
    db.session.flush()
    attacker = new_client()
    login(attacker, their_owner)
    token = csrf_token(attacker, f"/w/{theirs.slug}/connections")
    started = attacker.post(f"/w/{theirs.slug}/connections/hubspot/connect", headers={"X-CSRFToken": token})
    back = crm.consent(started.headers["Location"]).split("localhost", 1)[1]
    # The victim, an owner of ours, is lured to the attacker's callback URL.
    victim = new_client()
    login(victim, our_owner)
    assert victim.get(back).status_code == 400
    assert _row(db, ours, "hubspot") is None and _row(db, theirs, "hubspot") is None


def test_roles_connect_and_see(crm, db, new_client):
    workspace, _owner = workspace_with_owner(name="Roles Co")
    member = MembershipFactory(workspace=workspace, role="member").user
    viewer = MembershipFactory(workspace=workspace, role="viewer").user
    db.session.flush()
    for user in (member, viewer):
        browser = new_client()
        login(browser, user)
        page = browser.get(f"/w/{workspace.slug}/connections").get_data(as_text=True)
        assert "Connect HubSpot" not in page and "An owner or admin of this workspace can connect it." in page
        token = csrf_token(browser, f"/w/{workspace.slug}/connections")
        resp = browser.post(f"/w/{workspace.slug}/connections/hubspot/connect", headers={"X-CSRFToken": token})
        assert resp.status_code == 403
    viewer_browser = new_client()
    login(viewer_browser, viewer)
    assert viewer_browser.get(f"/w/{workspace.slug}/connections/hubspot/fields").status_code == 403


def _connected(client, crm, db, workspace, provider):
    resp, _ = connect(client, crm, workspace.slug, provider)
    assert resp.status_code == 303
    return _row(db, workspace, provider)


def test_refresh_before_expiry(owner_client, crm, db, app):
    workspace, _owner, client = owner_client
    row = _connected(client, crm, db, workspace, "hubspot")
    old_access, _ = _plain_tokens(workspace, row)
    # The token expires within the refresh margin: the client refreshes before calling.
    row.expires_at = utcnow() + timedelta(seconds=30)
    db.session.flush()
    with CrmClient(row.id, app.config["MORKET"]) as api:
        assert api.request("GET", "/crm/v3/objects/contacts").status_code == 200
    row = _row(db, workspace, "hubspot")
    assert crm.state("hubspot")["grants"]["refresh_token"] == 1
    assert row.token_version == 2 and row.expires_at > utcnow() + timedelta(minutes=20)
    assert _plain_tokens(workspace, row)[0] != old_access


@pytest.mark.parametrize("provider", ["hubspot", "salesforce"])
def test_refresh_on_401_then_the_call_succeeds(owner_client, crm, db, app, provider):
    workspace, _owner, client = owner_client
    row = _connected(client, crm, db, workspace, provider)
    assert crm.expire(provider) == 1  # the CRM ends the session early (Salesforce: session timeout)
    path = "/crm/v3/properties/contacts" if provider == "hubspot" else "/sobjects/Account/describe"
    with CrmClient(row.id, app.config["MORKET"]) as api:
        assert api.request("GET", path).status_code == 200
    assert crm.state(provider)["grants"]["refresh_token"] == 1


def test_disconnect_revokes_and_deletes_tokens(owner_client, crm, db, app):
    workspace, _owner, client = owner_client
    row = _connected(client, crm, db, workspace, "hubspot")
    access, refresh = _plain_tokens(workspace, row)
    token = csrf_token(client, f"/w/{workspace.slug}/connections")
    resp = client.post(f"/w/{workspace.slug}/connections/hubspot/disconnect", headers={"X-CSRFToken": token})
    assert resp.status_code == 303
    page = client.get(resp.headers["Location"]).get_data(as_text=True)
    assert "Morket&#39;s access was revoked" in page and "Connect HubSpot" in page
    assert _row(db, workspace, "hubspot") is None
    # The sandbox now refuses both the old access token and the old refresh token.
    assert (
        crm.http.get(
            f"{crm.url('hubspot')}/crm/v3/objects/contacts", headers={"Authorization": f"Bearer {access}"}
        ).status_code
        == 401
    )
    refused = crm.http.post(
        f"{crm.url('hubspot')}/oauth/v1/token",
        data={"grant_type": "refresh_token", "refresh_token": refresh, "client_id": "sandbox-morket-hubspot",
              "client_secret": "sandbox-hubspot-secret-0001"},
    )  # fmt: skip
    assert refused.status_code == 400


def test_salesforce_disconnect_revokes(owner_client, crm, db):
    workspace, _owner, client = owner_client
    row = _connected(client, crm, db, workspace, "salesforce")
    access, _ = _plain_tokens(workspace, row)
    token = csrf_token(client, f"/w/{workspace.slug}/connections")
    client.post(f"/w/{workspace.slug}/connections/salesforce/disconnect", headers={"X-CSRFToken": token})
    resp = crm.http.get(
        f"{crm.url('salesforce')}/services/data/v62.0/sobjects/Account/describe",
        headers={"Authorization": f"Bearer {access}"},
    )
    assert resp.status_code == 401 and resp.json()[0]["errorCode"] == "INVALID_SESSION_ID"


@pytest.mark.parametrize(
    ("provider", "objects", "key"),
    [
        ("hubspot", ["Contacts", "Companies"], "email"),
        ("salesforce", ["Contacts", "Leads", "Accounts"], "Morket_Id__c"),
    ],
)
def test_fields_show_what_morket_can_write(owner_client, crm, db, provider, objects, key):
    workspace, _owner, client = owner_client
    _connected(client, crm, db, workspace, provider)

    def reads() -> int:
        log = crm.http.get(f"{crm.base}/_sandbox/log", params={"provider": provider}).json()
        return len([e for e in log if e["operation"] in ("properties", "describe")])

    before = reads()
    schemas = service.describe_objects(workspace, provider)
    assert [s.label for s in schemas] == objects
    assert key in [f.name for f in schemas[0].keys]
    fragment = client.get(f"/w/{workspace.slug}/connections/{provider}/fields").get_data(as_text=True)
    for label in objects:
        assert label in fragment
    assert f"<code>{key}</code>" in fragment
    # Read once per object, then from the cache.
    assert reads() - before == len(objects)


def test_a_refused_refresh_shows_as_the_connections_health(owner_client, crm, db, app):
    workspace, _owner, client = owner_client
    row = _connected(client, crm, db, workspace, "hubspot")
    _access, refresh = _plain_tokens(workspace, row)
    crm.http.delete(f"{crm.url('hubspot')}/oauth/v1/refresh-tokens/{refresh}")  # revoked in HubSpot's settings
    crm.expire("hubspot")
    fragment = client.get(f"/w/{workspace.slug}/connections/hubspot/fields").get_data(as_text=True)
    assert "HubSpot refused the refresh" in fragment
    page = client.get(f"/w/{workspace.slug}/connections").get_data(as_text=True)
    assert "Needs attention" in page and "HubSpot refused the refresh" in page


def test_tokens_stay_out_of_logs_through_refresh_and_disconnect(owner_client, crm, db, app, caplog):
    workspace, _owner, client = owner_client
    caplog.set_level(logging.DEBUG)
    row = _connected(client, crm, db, workspace, "hubspot")
    access, refresh = _plain_tokens(workspace, row)
    crm.expire("hubspot")
    with CrmClient(row.id, app.config["MORKET"]) as api:
        api.request("GET", "/crm/v3/objects/contacts")
    new_access, _ = _plain_tokens(workspace, _row(db, workspace, "hubspot"))
    token = csrf_token(client, f"/w/{workspace.slug}/connections")
    client.post(f"/w/{workspace.slug}/connections/hubspot/disconnect", headers={"X-CSRFToken": token})
    assert "refresh-tokens/[redacted]" in caplog.text  # the revoke call was logged, its token masked
    for secret in (access, refresh, new_access):
        assert secret not in caplog.text


def test_salesforce_instance_must_be_a_salesforce_host():
    from morket.crm.providers import instance_url_allowed

    production = {"SALESFORCE_LOGIN_URL": "https://login.salesforce.com"}
    assert instance_url_allowed("https://acme.my.salesforce.com", production)
    assert not instance_url_allowed("http://acme.my.salesforce.com", production)
    assert not instance_url_allowed("https://salesforce.com.evil.example", production)
    assert not instance_url_allowed("https://user@evil.example", production)
    sandbox = {"SALESFORCE_LOGIN_URL": "http://127.0.0.1:8900/salesforce"}
    assert instance_url_allowed("http://127.0.0.1:8900/salesforce", sandbox)
    assert not instance_url_allowed("http://127.0.0.1:9999/salesforce", sandbox)


def test_a_crm_without_an_oauth_app_says_so(owner_client, crm, app, monkeypatch):
    workspace, _owner, client = owner_client
    monkeypatch.setitem(app.config["MORKET"], "SALESFORCE_CLIENT_ID", "")
    page = client.get(f"/w/{workspace.slug}/connections").get_data(as_text=True)
    assert "Salesforce is not set up on this Morket server yet" in page and "Connect Salesforce" not in page
    token = csrf_token(client, f"/w/{workspace.slug}/connections")
    resp = client.post(f"/w/{workspace.slug}/connections/salesforce/connect", headers={"X-CSRFToken": token})
    assert resp.status_code == 303
    assert "Salesforce is not set up on this Morket server" in client.get(resp.headers["Location"]).get_data(
        as_text=True
    )
