"""What the workspace pages tell people: invitations waiting in the app, who invited you, a role change
that says it saved, reserved test domains named as such, and the first-run sample table."""

from __future__ import annotations

import json

from sqlalchemy import func, select

from morket.tables.models import Table
from morket.workspaces import service
from tests.factories import MembershipFactory, UserFactory, csrf_token, login, workspace_with_owner


def _post(client, path: str, data: dict | None = None, **kwargs):
    return client.post(path, data={"csrf_token": csrf_token(client, "/w"), **(data or {})}, **kwargs)


def test_an_invited_address_sees_its_invitation_in_the_app_with_who_sent_it(client, db):
    workspace, owner = workspace_with_owner(name="Acme Growth")
    owner.name = "Olivia Owner"
    service.invite_member(workspace, owner, "ivan@example.com", "viewer")
    invitee = UserFactory(email="ivan@example.com")
    db.session.commit()
    login(client, invitee)

    page = client.get("/w").get_data(as_text=True)
    assert "1 invitation waiting for you" in page
    assert "Olivia Owner</strong> invited you to <strong>Acme Growth</strong>" in page
    link = page.split('href="/invite/', 1)[1].split('"', 1)[0]
    invitation = client.get(f"/invite/{link}").get_data(as_text=True)
    assert "Olivia Owner</strong> (" in invitation and "invited <strong>ivan@example.com</strong>" in invitation
    # Every page's sidebar counts it too.
    assert 'aria-label="1 pending"' in client.get("/settings").get_data(as_text=True)


def test_a_role_change_answers_with_a_toast(client, db):
    workspace, owner = workspace_with_owner()
    member = MembershipFactory(workspace=workspace, role="member")
    db.session.commit()
    login(client, owner)
    resp = _post(
        client,
        f"/w/{workspace.slug}/members/{member.id}/role",
        {"role": "admin"},
        headers={"HX-Request": "true", "HX-Target": f"member-{member.id}"},
    )
    assert resp.status_code == 200
    toasts = json.loads(resp.headers["HX-Trigger"])["morket:toast"]["toasts"]
    assert toasts == [{"message": f"{member.user.email} is now admin.", "kind": "success"}]


def test_a_reserved_test_domain_is_named_as_such_not_as_an_invalid_address(client, db):
    workspace, owner = workspace_with_owner()
    db.session.commit()
    login(client, owner)
    resp = _post(client, f"/w/{workspace.slug}/members", {"email": "ivan@acme.test", "role": "member"})
    page = resp.get_data(as_text=True)
    assert resp.status_code == 422
    assert "acme.test is a reserved domain" in page and "Enter a valid email address" not in page
    assert service.list_pending_invitations(workspace) == []


def test_the_sample_table_is_offered_in_sandbox_mode_only(client, db, app, monkeypatch):
    workspace, owner = workspace_with_owner()
    db.session.commit()
    login(client, owner)
    monkeypatch.setitem(app.config["MORKET"], "SANDBOX_MODE", False)
    assert "Start with a sample table" not in client.get(f"/w/{workspace.slug}/").get_data(as_text=True)
    assert _post(client, f"/w/{workspace.slug}/sample-table").status_code == 404

    monkeypatch.setitem(app.config["MORKET"], "SANDBOX_MODE", True)
    overview = client.get(f"/w/{workspace.slug}/").get_data(as_text=True)
    assert "Start with a sample table" in overview and "Import a CSV" in overview
    resp = _post(client, f"/w/{workspace.slug}/sample-table")
    assert resp.status_code == 302
    table = db.session.scalar(select(Table).where(Table.workspace_id == workspace.id))
    assert table.name == "Sample companies" and table.row_count == 25
    assert "Start with a sample table" not in client.get(f"/w/{workspace.slug}/").get_data(as_text=True)
    count = db.session.scalar(select(func.count()).select_from(Table).where(Table.workspace_id == workspace.id))
    assert count == 1


def test_a_viewer_cannot_create_the_sample_table(client, db, app, monkeypatch):
    workspace, _ = workspace_with_owner()
    viewer = MembershipFactory(workspace=workspace, role="viewer")
    db.session.commit()
    login(client, viewer.user)
    monkeypatch.setitem(app.config["MORKET"], "SANDBOX_MODE", True)
    assert _post(client, f"/w/{workspace.slug}/sample-table").status_code == 403
    assert db.session.scalar(select(func.count()).select_from(Table).where(Table.workspace_id == workspace.id)) == 0
