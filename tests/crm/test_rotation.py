"""A master-key rotation re-seals CRM tokens too: after the switch, the connection still works."""

from __future__ import annotations

from morket.core.crypto import key_fingerprint
from morket.crm import service
from morket.crm.client import CrmClient
from tests.crm.conftest import connect
from tests.factories import login, workspace_with_owner

NEW_MASTER = bytes(range(140, 172))


def test_rotation_reseals_crm_tokens(app, client, crm, db, monkeypatch):
    workspace, owner = workspace_with_owner(name="Rotate Co")
    db.session.flush()
    login(client, owner)
    connect(client, crm, workspace.slug, "hubspot")
    result = app.test_cli_runner().invoke(
        args=["credentials", "rotate-master-key"], env={"MORKET_NEW_MASTER_KEY": NEW_MASTER.hex()}
    )
    assert result.exit_code == 0, result.output
    assert "re-encrypted 1" in result.output
    db.session.expire_all()
    row = service.get_connection(workspace, "hubspot")
    assert row.key_fingerprint == key_fingerprint(NEW_MASTER)
    monkeypatch.setitem(app.config["MORKET"], "MASTER_KEY", NEW_MASTER)
    crm.expire("hubspot")  # the refresh token must decrypt under the new key too
    with CrmClient(row.id, app.config["MORKET"]) as api:
        assert api.request("GET", "/crm/v3/objects/contacts").status_code == 200
    assert crm.state("hubspot")["grants"]["refresh_token"] == 1
