"""Many callers find the access token expired at once: the CRM sees exactly one refresh.

The connection is committed (every thread has its own app context, session and database
connection, as separate workers would); the callers start together behind a barrier.
"""

from __future__ import annotations

import threading
from urllib.parse import parse_qs, urlsplit

import pytest
from sqlalchemy import text

from morket.crm import oauth, tokens
from morket.crm.client import CrmClient
from morket.crm.models import CrmConnection
from morket.crm.providers import SPECS
from morket.extensions import db as _db
from morket.workspaces.models import Workspace

CALLERS = 8


@pytest.fixture
def committed_connection(app, crm):
    """A committed workspace connected to the HubSpot sandbox through a real code exchange."""
    settings = app.config["MORKET"]
    spec = SPECS["hubspot"]
    redirect_uri = "http://localhost/connections/hubspot/callback"
    with app.app_context():
        state, verifier = oauth.new_state()
        back = crm.consent(oauth.authorization_url(spec, settings, redirect_uri, state, verifier))
        code = parse_qs(urlsplit(back).query)["code"][0]
        found = oauth.exchange_code(spec, settings, redirect_uri, code, verifier)
        workspace = Workspace(name="Refresh Race Co", slug="refresh-race-co")
        _db.session.add(workspace)
        _db.session.flush()
        connection = CrmConnection(
            workspace_id=workspace.id,
            provider="hubspot",
            account_id=found.account_id,
            account_name=found.account_name,
            scopes=found.scopes,
            access_ciphertext=tokens.seal(workspace.id, "hubspot", "access", found.access_token),
            refresh_ciphertext=tokens.seal(workspace.id, "hubspot", "refresh", found.refresh_token),
            key_fingerprint=tokens.fingerprint(),
            expires_at=found.expires_at,
            token_version=1,
        )
        _db.session.add(connection)
        _db.session.commit()
        ids = workspace.id, connection.id
    yield ids
    with app.app_context():
        _db.session.execute(text("DELETE FROM workspaces WHERE id = :w"), {"w": ids[0]})
        _db.session.commit()


def test_expired_token_under_concurrent_calls_is_refreshed_once(app, crm, committed_connection):
    _workspace_id, connection_id = committed_connection
    assert crm.expire("hubspot") == 1
    barrier = threading.Barrier(CALLERS)
    statuses: list[int] = []
    errors: list[BaseException] = []
    lock = threading.Lock()

    def call() -> None:
        try:
            with app.app_context(), CrmClient(connection_id, app.config["MORKET"]) as api:
                barrier.wait(10)
                status = api.request("GET", "/crm/v3/objects/contacts").status_code
            with lock:
                statuses.append(status)
        except BaseException as exc:  # noqa: BLE001 - reported by the assertion below
            with lock:
                errors.append(exc)
        finally:
            with app.app_context():
                _db.session.remove()

    threads = [threading.Thread(target=call) for _ in range(CALLERS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not errors, errors
    assert statuses == [200] * CALLERS
    assert crm.state("hubspot")["grants"]["refresh_token"] == 1
    with app.app_context():
        assert _db.session.get(CrmConnection, connection_id).token_version == 2
