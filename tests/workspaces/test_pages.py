"""Workspace pages as a user meets them: create, settings, members and roles, leaving, API keys."""

from __future__ import annotations

from sqlalchemy import func, select

from morket.core.models import AuditEvent
from morket.workspaces import service
from morket.workspaces.models import ApiKey, Membership, Workspace
from tests.factories import MembershipFactory, UserFactory, csrf_token, login, workspace_with_owner

HTMX = {"HX-Request": "true", "HX-Target": "member-1"}


def _actions(db, workspace) -> list[str]:
    stmt = select(AuditEvent.action).where(AuditEvent.workspace_id == workspace.id).order_by(AuditEvent.id)
    return list(db.session.scalars(stmt))


def _post(client, path: str, data: dict | None = None, **kwargs):
    return client.post(path, data={"csrf_token": csrf_token(client, "/w"), **(data or {})}, **kwargs)


def test_new_user_sees_the_empty_state_then_creates_a_workspace(client, db):
    user = UserFactory()
    login(client, user)
    page = client.get("/w").get_data(as_text=True)
    assert "No workspaces yet" in page and "Create workspace" in page

    resp = _post(client, "/w", {"name": "Acme Growth"})
    assert resp.status_code == 302 and resp.headers["Location"] == "/w/acme-growth/"
    dashboard = client.get("/w/acme-growth/").get_data(as_text=True)
    assert "Acme Growth is ready" in dashboard
    assert "No tables yet" in dashboard
    assert 'class="badge role-owner">Owner' in dashboard
    assert "Invite your team" in dashboard
    workspace = db.session.scalar(select(Workspace).where(Workspace.slug == "acme-growth"))
    assert _actions(db, workspace) == ["workspace.created"]
    assert "No workspaces yet" not in client.get("/w").get_data(as_text=True)


def test_unverified_user_cannot_create_a_workspace(client, db):
    user = UserFactory(email_verified_at=None)
    db.session.commit()
    login(client, user)
    page = client.get("/w").get_data(as_text=True)
    assert "Confirm your email address first" in page
    resp = _post(client, "/w", {"name": "Sneaky"})
    assert resp.status_code == 403
    assert db.session.scalar(select(func.count()).select_from(Workspace).where(Workspace.name == "Sneaky")) == 0


def test_blank_workspace_name_is_refused_with_a_message(client, db):
    login(client, UserFactory())
    resp = _post(client, "/w", {"name": "   "})
    assert resp.status_code == 422
    assert "Enter a workspace name." in resp.get_data(as_text=True)


def test_rename_keeps_the_address_and_delete_needs_the_typed_name(client, db):
    workspace, owner = workspace_with_owner(name="Acme", slug="acme")
    db.session.commit()
    login(client, owner)
    resp = _post(client, "/w/acme/settings", {"name": "Acme Inc"})
    assert resp.status_code == 302
    assert "Acme Inc" in client.get("/w/acme/").get_data(as_text=True)

    resp = _post(client, "/w/acme/settings/delete", {"confirm_name": "acme inc"})
    assert resp.status_code == 422
    assert "Type Acme Inc exactly" in resp.get_data(as_text=True)
    assert client.get("/w/acme/").status_code == 200

    resp = _post(client, "/w/acme/settings/delete", {"confirm_name": "Acme Inc"})
    assert resp.status_code == 302 and resp.headers["Location"] == "/w"
    assert "Acme Inc and everything in it was deleted" in client.get("/w").get_data(as_text=True)
    assert client.get("/w/acme/").status_code == 404


def test_settings_page_offers_delete_to_owners_only(client, db):
    workspace, owner = workspace_with_owner()
    admin = MembershipFactory(workspace=workspace, role="admin").user
    login(client, admin)
    assert 'id="delete-workspace"' not in client.get(f"/w/{workspace.slug}/settings").get_data(as_text=True)
    login(client, owner)
    assert 'id="delete-workspace"' in client.get(f"/w/{workspace.slug}/settings").get_data(as_text=True)


def test_members_page_shows_roles_as_badges_and_controls_by_rank(client, db):
    workspace, owner = workspace_with_owner()
    admin = MembershipFactory(workspace=workspace, role="admin")
    viewer = MembershipFactory(workspace=workspace, role="viewer")
    owner_row = service.get_membership(workspace, owner)
    login(client, admin.user)
    page = client.get(f"/w/{workspace.slug}/members").get_data(as_text=True)
    # The admin can manage the viewer but sees the owner's role only as a badge.
    assert f'id="role-{viewer.id}"' in page
    assert f'id="role-{owner_row.id}"' not in page
    assert 'class="badge role-owner">Owner' in page
    assert "Transfer ownership" not in page
    # Admins cannot hand out the owner role.
    assert '<option value="owner"' not in page

    login(client, viewer.user)
    page = client.get(f"/w/{workspace.slug}/members").get_data(as_text=True)
    assert 'id="invite-member"' not in page and "<select" not in page
    assert "Leave workspace" in page


def test_role_change_over_htmx_swaps_the_member_row(client, db):
    workspace, owner = workspace_with_owner()
    viewer = MembershipFactory(workspace=workspace, role="viewer")
    login(client, owner)
    resp = _post(client, f"/w/{workspace.slug}/members/{viewer.id}/role", {"role": "admin"}, headers=HTMX)
    assert resp.status_code == 200
    body = resp.get_data(as_text=True)
    assert body.lstrip().startswith(f'<tr id="member-{viewer.id}"') and "<html" not in body
    assert '<option value="admin" selected>' in body
    assert "HX-Request" in resp.headers["Vary"]
    assert viewer.role == "admin"
    assert _actions(db, workspace) == ["member.role_changed"]
    event = db.session.scalar(select(AuditEvent).where(AuditEvent.action == "member.role_changed"))
    assert event.data == {"old": "viewer", "new": "admin"} and event.actor_id == owner.id


def test_admin_cannot_demote_an_owner(client, db):
    workspace, owner = workspace_with_owner()
    admin = MembershipFactory(workspace=workspace, role="admin").user
    db.session.commit()
    owner_row = service.get_membership(workspace, owner)
    login(client, admin)
    resp = _post(client, f"/w/{workspace.slug}/members/{owner_row.id}/role", {"role": "viewer"}, headers=HTMX)
    assert resp.status_code == 403
    assert "Only an owner can change the role of an owner" in resp.get_data(as_text=True)
    resp = _post(client, f"/w/{workspace.slug}/members/{owner_row.id}/role", {"role": "viewer"})
    assert resp.status_code == 302
    assert "Only an owner can change" in client.get(resp.headers["Location"]).get_data(as_text=True)
    db.session.expire_all()
    assert service.get_membership(workspace, owner).role == "owner"
    assert _actions(db, workspace) == []


def test_nobody_can_change_their_own_role_from_the_page(client, db):
    workspace, owner = workspace_with_owner()
    db.session.commit()
    login(client, owner)
    mine = service.get_membership(workspace, owner)
    resp = _post(client, f"/w/{workspace.slug}/members/{mine.id}/role", {"role": "viewer"}, headers=HTMX)
    assert resp.status_code == 403 and "cannot change your own role" in resp.get_data(as_text=True)


def test_unknown_role_is_a_clear_422(client, db):
    workspace, owner = workspace_with_owner()
    viewer = MembershipFactory(workspace=workspace, role="viewer")
    db.session.commit()
    login(client, owner)
    resp = _post(client, f"/w/{workspace.slug}/members/{viewer.id}/role", {"role": "emperor"}, headers=HTMX)
    assert resp.status_code == 422 and "Choose one of the listed roles" in resp.get_data(as_text=True)


def test_remove_over_htmx_empties_the_row_and_the_member_loses_access(client, new_client, db):
    workspace, owner = workspace_with_owner()
    member = MembershipFactory(workspace=workspace, role="member")
    member_user = member.user
    login(client, owner)
    resp = _post(client, f"/w/{workspace.slug}/members/{member.id}/remove", headers=HTMX)
    assert resp.status_code == 200 and resp.get_data(as_text=True) == ""
    assert "member.removed" in _actions(db, workspace)
    removed = new_client()
    login(removed, member_user)
    assert removed.get(f"/w/{workspace.slug}/").status_code == 404


def test_last_owner_cannot_leave_but_others_can(client, new_client, db):
    workspace, owner = workspace_with_owner(name="Acme")
    viewer = MembershipFactory(workspace=workspace, role="viewer").user
    db.session.commit()
    login(client, owner)
    resp = _post(client, f"/w/{workspace.slug}/leave")
    assert resp.status_code == 302
    assert "You are the last owner" in client.get(resp.headers["Location"]).get_data(as_text=True)
    assert client.get(f"/w/{workspace.slug}/").status_code == 200

    other = new_client()
    login(other, viewer)
    resp = _post(other, f"/w/{workspace.slug}/leave")
    assert resp.headers["Location"] == "/w"
    assert "You left Acme" in other.get("/w").get_data(as_text=True)
    assert other.get(f"/w/{workspace.slug}/").status_code == 404
    assert "member.left" in _actions(db, workspace)


def test_transfer_ownership_makes_the_owner_an_admin(client, db):
    workspace, owner = workspace_with_owner()
    member = MembershipFactory(workspace=workspace, role="member")
    login(client, owner)
    resp = _post(client, f"/w/{workspace.slug}/members/{member.id}/transfer")
    assert resp.status_code == 302
    assert "now owns" in client.get(resp.headers["Location"]).get_data(as_text=True)
    db.session.expire_all()
    assert db.session.get(Membership, member.id).role == "owner"
    assert service.get_membership(workspace, owner).role == "admin"
    # The former owner, now an admin, can no longer delete the workspace.
    assert _post(client, f"/w/{workspace.slug}/settings/delete", {"confirm_name": workspace.name}).status_code == 403


def test_invite_form_errors_are_shown(client, db):
    workspace, owner = workspace_with_owner()
    member = MembershipFactory(workspace=workspace, role="member").user
    db.session.commit()
    login(client, owner)
    resp = _post(client, f"/w/{workspace.slug}/members", {"email": "nope", "role": "member"})
    assert resp.status_code == 422 and "Enter a valid email address" in resp.get_data(as_text=True)
    resp = _post(client, f"/w/{workspace.slug}/members", {"email": member.email, "role": "member"})
    assert resp.status_code == 409 and "already a member" in resp.get_data(as_text=True)
    resp = _post(client, f"/w/{workspace.slug}/members", {"email": "a@example.com", "role": "emperor"})
    assert resp.status_code == 422


def test_api_key_is_shown_once_then_only_its_prefix(client, db):
    workspace, owner = workspace_with_owner()
    login(client, owner)
    resp = _post(client, f"/w/{workspace.slug}/api-keys", {"name": "CRM sync", "role": "member"})
    assert resp.status_code == 200
    assert resp.headers["Cache-Control"] == "no-store"
    page = resp.get_data(as_text=True)
    assert "Copy your new key now" in page
    key = db.session.scalar(select(ApiKey).where(ApiKey.workspace_id == workspace.id))
    plaintext = page.split('id="new-api-key-value" class="secret" value="', 1)[1].split('"', 1)[0]
    assert plaintext.startswith("mk_live_") and plaintext[len("mk_live_") :].startswith(key.prefix)

    listing = client.get(f"/w/{workspace.slug}/api-keys").get_data(as_text=True)
    assert plaintext not in listing and "Copy your new key now" not in listing
    assert f"mk_live_{key.prefix}…" in listing and "CRM sync" in listing and "Never" in listing


def test_revoked_key_is_listed_as_revoked(client, db):
    workspace, owner = workspace_with_owner()
    key, _ = service.create_api_key(workspace, owner, name="Old key", role="viewer")
    login(client, owner)
    resp = _post(client, f"/w/{workspace.slug}/api-keys/{key.id}/revoke")
    assert resp.status_code == 302
    listing = client.get(resp.headers["Location"]).get_data(as_text=True)
    assert "Old key was revoked" in listing
    row = listing.split(f'id="api-key-{key.id}"', 1)[1].split("</tr>", 1)[0]
    assert "Revoked" in row and "<button" not in row
    assert _actions(db, workspace) == ["api_key.created", "api_key.revoked"]


def test_admin_cannot_create_an_owner_key(client, db):
    workspace, owner = workspace_with_owner()
    admin = MembershipFactory(workspace=workspace, role="admin").user
    db.session.commit()
    login(client, admin)
    resp = _post(client, f"/w/{workspace.slug}/api-keys", {"name": "Root", "role": "owner"})
    assert resp.status_code == 422
    assert db.session.scalar(select(func.count()).select_from(ApiKey).where(ApiKey.name == "Root")) == 0


def test_switcher_lists_your_workspaces_inside_a_workspace(client, db):
    first, owner = workspace_with_owner(name="Alpha Team")
    second = MembershipFactory(user=owner, workspace=workspace_with_owner(name="Beta Team")[0], role="viewer")
    workspace_with_owner(name="Gamma Team")
    login(client, owner)
    page = client.get(f"/w/{first.slug}/").get_data(as_text=True)
    switcher = page.split('id="workspace-switcher"', 1)[1].split("</details>", 1)[0]
    assert "Alpha Team" in switcher and f'href="/w/{second.workspace.slug}/"' in switcher
    assert "Gamma Team" not in switcher


def test_dashboard_lists_tables_for_readers_and_not_for_billing(client, new_client, db):
    from morket.tables import service as tables

    workspace, owner = workspace_with_owner()
    table = tables.create_table(workspace, owner, "Leads Q4", columns=[{"name": "Name", "type": "text"}])
    tables.insert_rows(workspace, owner, table, [{"Name": "Ada"}, {"Name": "Grace"}])
    login(client, owner)
    page = client.get(f"/w/{workspace.slug}/").get_data(as_text=True)
    assert f'href="/w/{workspace.slug}/tables/{table.id}"' in page and "Leads Q4" in page
    assert "2 rows" in page and "No tables yet" not in page
    billing = MembershipFactory(workspace=workspace, role="billing_admin")
    other = new_client()
    login(other, billing.user)
    page = other.get(f"/w/{workspace.slug}/").get_data(as_text=True)
    assert "Leads Q4" not in page and "billing and credits, not to tables" in page
