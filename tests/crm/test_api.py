"""CRM connections over the JSON API: status for every role, disconnect for managers, no tokens in answers."""

from __future__ import annotations

from morket.api.tokens import encode_access_token
from morket.crm import service, tokens
from tests.crm.conftest import connect
from tests.factories import MembershipFactory, login, workspace_with_owner


def _bearer(user, workspace, role: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {encode_access_token(user.id, workspace.id, role)}"}


def test_status_and_disconnect_over_the_api(client, new_client, crm, db):
    workspace, owner = workspace_with_owner(name="Api Co")
    viewer = MembershipFactory(workspace=workspace, role="viewer").user
    db.session.flush()
    login(client, owner)
    connect(client, crm, workspace.slug, "salesforce")
    row = service.get_connection(workspace, "salesforce")
    access = tokens.unseal(workspace.id, "salesforce", "access", row.access_ciphertext)
    refresh = tokens.unseal(workspace.id, "salesforce", "refresh", row.refresh_ciphertext)

    api = new_client()
    listed = api.get("/api/v1/crm/connections", headers=_bearer(viewer, workspace, "viewer"))
    assert listed.status_code == 200
    body = listed.get_data(as_text=True)
    assert access not in body and refresh not in body
    found = {c["provider"]: c for c in listed.get_json()["data"]}
    assert found["hubspot"]["connected"] is False
    sf = found["salesforce"]
    assert sf["connected"] and sf["healthy"] and sf["account_name"] == "demo.admin@morket-demo.example"
    assert sf["scopes"] == ["api", "refresh_token"]

    refused = api.delete("/api/v1/crm/connections/salesforce", headers=_bearer(viewer, workspace, "viewer"))
    assert refused.status_code == 403
    gone = api.delete("/api/v1/crm/connections/salesforce", headers=_bearer(owner, workspace, "owner"))
    assert gone.status_code == 200 and gone.get_json()["data"] == {"provider": "salesforce", "revoked": True}
    assert crm.state("salesforce")["grants"]["revoke"] == 1
    again = api.delete("/api/v1/crm/connections/salesforce", headers=_bearer(owner, workspace, "owner"))
    assert again.status_code == 404
    assert (
        api.delete("/api/v1/crm/connections/pipedrive", headers=_bearer(owner, workspace, "owner")).status_code == 404
    )
