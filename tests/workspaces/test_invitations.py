"""Invitations end to end: the email over real SMTP, the link, and every way a link can be refused."""

from __future__ import annotations

import re
from datetime import timedelta
from urllib.parse import unquote, urlsplit

from sqlalchemy import select

from morket.core.models import AuditEvent
from morket.workspaces import service
from morket.workspaces.models import Invitation
from tests.factories import UserFactory, csrf_token, login, workspace_with_owner

_LINK = re.compile(r"https?://\S+/invite/\S+")


def _invite_link(smtp_server, address: str) -> str:
    [mail] = smtp_server.wait_for(address)
    match = _LINK.search(mail.text)
    assert match, mail.text
    return urlsplit(match.group(0)).path


def test_invited_person_gets_the_email_accepts_and_sees_the_workspace(client, new_client, db, run_jobs, smtp_server):
    workspace, owner = workspace_with_owner(name="Acme Growth")
    login(client, owner)
    resp = client.post(
        f"/w/{workspace.slug}/members",
        data={"csrf_token": csrf_token(client, "/w"), "email": "Invitee@Example.com", "role": "viewer"},
    )
    assert resp.status_code == 302
    page = client.get(f"/w/{workspace.slug}/members").get_data(as_text=True)
    assert "Invitation sent to invitee@example.com" in page
    assert 'id="pending-invitations"' in page and "invitee@example.com" in page

    run_jobs()
    [mail] = smtp_server.wait_for("invitee@example.com")
    assert "Acme Growth" in mail.subject
    assert "viewer" in mail.text and "7 days" in mail.text
    path = _invite_link(smtp_server, "invitee@example.com")

    invitee = UserFactory(email="invitee@example.com")
    browser = new_client()
    login(browser, invitee)
    landing = browser.get(path)
    assert landing.status_code == 200
    assert "Join Acme Growth" in landing.get_data(as_text=True)
    resp = browser.post(path, data={"csrf_token": csrf_token(browser, path)})
    assert resp.status_code == 302
    assert resp.headers["Location"] == f"/w/{workspace.slug}/"

    dashboard = browser.get(f"/w/{workspace.slug}/").get_data(as_text=True)
    assert "Welcome to Acme Growth" in dashboard
    assert 'class="badge role-viewer">Viewer' in dashboard
    assert [w.slug for w, m in service.list_workspaces_for(invitee) if m.role == "viewer"] == [workspace.slug]
    assert service.list_pending_invitations(workspace) == []
    actions = db.session.scalars(select(AuditEvent.action).where(AuditEvent.workspace_id == workspace.id)).all()
    assert {"member.invited", "member.joined"} <= set(actions)

    # The same link a second time is refused with a clear page.
    again = browser.get(path)
    assert again.status_code == 409 and "already accepted" in again.get_data(as_text=True)


def test_expired_invitation_shows_a_clear_page_and_cannot_be_accepted(client, db):
    workspace, owner = workspace_with_owner()
    invitation = service.invite_member(workspace, owner, "late@example.com", "member")
    invitation.expires_at -= timedelta(days=8)
    login(client, UserFactory(email="late@example.com"))
    # Commit the setup (a savepoint here): the refused request rolls back only its own work.
    db.session.commit()
    path = f"/invite/{service.invitation_token(invitation)}"
    resp = client.get(path)
    assert resp.status_code == 409
    page = resp.get_data(as_text=True)
    assert "has expired" in page and "Accept and join" not in page
    resp = client.post(path, data={"csrf_token": csrf_token(client, "/w")})
    assert resp.status_code == 409
    assert invitation.accepted_at is None


def test_revoked_invitation_link_stops_working(client, new_client, db):
    workspace, owner = workspace_with_owner()
    invitation = service.invite_member(workspace, owner, "gone@example.com", "member")
    path = f"/invite/{service.invitation_token(invitation)}"
    invitee_user = UserFactory(email="gone@example.com")
    db.session.commit()
    login(client, owner)
    resp = client.post(
        f"/w/{workspace.slug}/invitations/{invitation.id}/revoke", data={"csrf_token": csrf_token(client, "/w")}
    )
    assert resp.status_code == 302
    assert "no longer works" in client.get(resp.headers["Location"]).get_data(as_text=True)

    invitee = new_client()
    login(invitee, invitee_user)
    resp = invitee.get(path)
    assert resp.status_code == 409 and "was revoked" in resp.get_data(as_text=True)
    resp = invitee.post(path, data={"csrf_token": csrf_token(invitee, "/w")})
    assert resp.status_code == 409
    assert db.session.scalar(select(Invitation.accepted_at).where(Invitation.id == invitation.id)) is None


def test_someone_logged_in_with_another_address_is_told_and_refused(client, db):
    workspace, owner = workspace_with_owner()
    invitation = service.invite_member(workspace, owner, "right@example.com", "admin")
    path = f"/invite/{service.invitation_token(invitation)}"
    wrong = UserFactory(email="wrong@example.com")
    db.session.commit()
    login(client, wrong)
    page = client.get(path).get_data(as_text=True)
    assert "different email address" in page and "Accept and join" not in page
    resp = client.post(path, data={"csrf_token": csrf_token(client, "/w")})
    assert resp.status_code == 403
    assert service.get_membership(workspace, wrong) is None


def test_unverified_invitee_is_asked_to_confirm_first(client, db):
    workspace, owner = workspace_with_owner()
    invitation = service.invite_member(workspace, owner, "new@example.com", "member")
    path = f"/invite/{service.invitation_token(invitation)}"
    login(client, UserFactory(email="new@example.com", email_verified_at=None))
    db.session.commit()
    assert "Confirm your email address first" in client.get(path).get_data(as_text=True)
    assert client.post(path, data={"csrf_token": csrf_token(client, "/w")}).status_code == 403


def test_logged_out_visitor_is_offered_log_in_with_next_back_to_the_invite(client, db):
    workspace, owner = workspace_with_owner(name="Acme")
    invitation = service.invite_member(workspace, owner, "someone@example.com", "member")
    path = f"/invite/{service.invitation_token(invitation)}"
    page = client.get(path).get_data(as_text=True)
    assert "Join Acme" in page
    login_link = re.search(r'href="(/login\?next=[^"]+)"', page)
    assert login_link and unquote(login_link.group(1)).endswith(path)
    assert 'href="/signup"' in page
    resp = client.post(path, data={"csrf_token": csrf_token(client, "/login")})
    assert resp.status_code == 302 and unquote(resp.headers["Location"]) == f"/login?next={path}"


def test_tampered_or_garbage_tokens_get_a_clear_404(client, db):
    workspace, owner = workspace_with_owner()
    token = service.invitation_token(service.invite_member(workspace, owner, "x@example.com", "member"))
    for bad in (token[:-2] + "AA", "not-a-token", "a" * 500, "%3Cscript%3E"):
        resp = client.get(f"/invite/{bad}")
        assert resp.status_code == 404, bad
        assert "cannot be used" in resp.get_data(as_text=True)
