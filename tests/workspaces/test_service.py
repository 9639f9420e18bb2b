"""Workspace services: slugs, roles, ownership, invitations, API keys and their audit trail."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from morket.core.errors import Conflict, Forbidden, NotFound, ValidationFailed
from morket.core.models import AuditEvent
from morket.core.security import hash_token
from morket.workspaces import service
from morket.workspaces.models import Membership, Workspace
from tests.factories import MembershipFactory, UserFactory, workspace_with_owner


def actions(db, workspace) -> list[str]:
    return list(
        db.session.scalars(
            select(AuditEvent.action).where(AuditEvent.workspace_id == workspace.id).order_by(AuditEvent.id)
        )
    )


def test_create_workspace_makes_creator_owner_with_unique_slug(db):
    user = UserFactory()
    first = service.create_workspace(user, "  Acme  Growth Team! ")
    second = service.create_workspace(user, "Acme growth team")
    assert first.slug == "acme-growth-team" and first.name == "Acme Growth Team!"
    assert second.slug == "acme-growth-team-2"
    assert {w.slug: m.role for w, m in service.list_workspaces_for(user)} == {
        "acme-growth-team": "owner",
        "acme-growth-team-2": "owner",
    }
    assert actions(db, first) == ["workspace.created"]


def test_slug_of_a_name_without_ascii_letters_is_still_valid(db):
    user = UserFactory()
    assert service.create_workspace(user, "Crème Brûlée").slug == "creme-brulee"
    assert service.create_workspace(user, "日本").slug == "workspace"


def test_unverified_user_cannot_create_a_workspace(db):
    with pytest.raises(Forbidden):
        service.create_workspace(UserFactory(email_verified_at=None), "Acme")


def test_blank_or_long_names_are_refused(db):
    user = UserFactory()
    with pytest.raises(ValidationFailed):
        service.create_workspace(user, "   ")
    with pytest.raises(ValidationFailed):
        service.create_workspace(user, "x" * 121)


def test_rename_and_delete_follow_roles(db):
    workspace, owner = workspace_with_owner(name="Acme")
    admin = MembershipFactory(workspace=workspace, role="admin").user
    member = MembershipFactory(workspace=workspace, role="member").user
    with pytest.raises(Forbidden):
        service.rename_workspace(workspace, member, "Nope")
    service.rename_workspace(workspace, admin, "Acme Inc")
    assert workspace.name == "Acme Inc"
    with pytest.raises(Forbidden):
        service.delete_workspace(workspace, admin)
    with pytest.raises(NotFound):
        service.delete_workspace(workspace, UserFactory())
    workspace_id = workspace.id
    service.delete_workspace(workspace, owner)
    db.session.expire_all()
    assert db.session.get(Workspace, workspace_id) is None
    kept = db.session.scalar(select(AuditEvent).where(AuditEvent.action == "workspace.deleted"))
    assert kept.workspace_id is None and kept.data["workspace_id"] == workspace_id


def test_admin_cannot_demote_remove_or_create_an_owner(db):
    workspace, owner = workspace_with_owner()
    owner_membership = service.get_membership(workspace, owner)
    admin = MembershipFactory(workspace=workspace, role="admin")
    viewer = MembershipFactory(workspace=workspace, role="viewer")
    with pytest.raises(Forbidden):
        service.change_member_role(workspace, admin.user, owner_membership.id, "member")
    with pytest.raises(Forbidden):
        service.remove_member(workspace, admin.user, owner_membership.id)
    with pytest.raises(Forbidden):
        service.change_member_role(workspace, admin.user, viewer.id, "owner")
    service.change_member_role(workspace, admin.user, viewer.id, "member")
    assert viewer.role == "member" and owner_membership.role == "owner"


def test_nobody_changes_their_own_role(db):
    workspace, owner = workspace_with_owner()
    with pytest.raises(Forbidden):
        service.change_member_role(workspace, owner, service.get_membership(workspace, owner).id, "viewer")


def test_unknown_role_and_foreign_member_are_refused(db):
    workspace, owner = workspace_with_owner()
    member = MembershipFactory(workspace=workspace)
    stranger = MembershipFactory()
    with pytest.raises(ValidationFailed):
        service.change_member_role(workspace, owner, member.id, "emperor")
    with pytest.raises(NotFound):
        service.change_member_role(workspace, owner, stranger.id, "viewer")
    with pytest.raises(NotFound):
        service.remove_member(workspace, owner, stranger.id)


def test_transfer_ownership_swaps_roles_and_is_owner_only(db):
    workspace, owner = workspace_with_owner()
    admin = MembershipFactory(workspace=workspace, role="admin")
    member = MembershipFactory(workspace=workspace, role="member")
    with pytest.raises(Forbidden):
        service.transfer_ownership(workspace, admin.user, member.id)
    service.transfer_ownership(workspace, owner, member.id)
    assert member.role == "owner"
    assert service.get_membership(workspace, owner).role == "admin"
    assert "workspace.ownership_transferred" in actions(db, workspace)


def test_last_owner_cannot_leave_but_a_second_owner_can(db):
    workspace, owner = workspace_with_owner()
    with pytest.raises(Conflict, match="last owner"):
        service.leave_workspace(workspace, owner)
    second = MembershipFactory(workspace=workspace, role="owner")
    service.leave_workspace(workspace, owner)
    assert service.get_membership(workspace, owner) is None
    assert [m.user_id for m in service.list_members(workspace)] == [second.user_id]


def test_members_are_listed_owners_first(db):
    workspace, owner = workspace_with_owner()
    MembershipFactory(workspace=workspace, role="viewer")
    MembershipFactory(workspace=workspace, role="admin")
    assert [m.role for m in service.list_members(workspace)] == ["owner", "admin", "viewer"]


def test_removed_member_loses_access_and_is_audited(db):
    workspace, owner = workspace_with_owner()
    member = MembershipFactory(workspace=workspace)
    service.remove_member(workspace, owner, member.id)
    assert db.session.scalar(select(Membership).where(Membership.id == member.id)) is None
    assert actions(db, workspace)[-1] == "member.removed"


def test_invitation_accept_requires_matching_verified_email(db, app):
    workspace, owner = workspace_with_owner()
    invitation = service.invite_member(workspace, owner, "New.Person@Example.com", "viewer")
    token = service.invitation_token(invitation)
    with pytest.raises(Forbidden, match="different email"):
        service.accept_invitation(token, UserFactory())
    with pytest.raises(Forbidden, match="Confirm your email"):
        service.accept_invitation(token, UserFactory(email="new.person@example.com", email_verified_at=None))
    db.session.rollback()


def test_invitation_accepted_once(db):
    workspace, owner = workspace_with_owner()
    invitation = service.invite_member(workspace, owner, "new@example.com", "viewer")
    token = service.invitation_token(invitation)
    invitee = UserFactory(email="new@example.com")
    membership = service.accept_invitation(token, invitee)
    assert membership.role == "viewer" and membership.workspace_id == workspace.id
    with pytest.raises(Conflict, match="already accepted"):
        service.accept_invitation(token, invitee)
    assert actions(db, workspace) == ["member.invited", "member.joined"]


def test_revoked_expired_and_forged_invitations_are_refused(db):
    workspace, owner = workspace_with_owner()
    revoked = service.invite_member(workspace, owner, "a@example.com", "member")
    service.revoke_invitation(workspace, owner, revoked.id)
    with pytest.raises(Conflict, match="revoked"):
        service.accept_invitation(service.invitation_token(revoked), UserFactory(email="a@example.com"))
    expired = service.invite_member(workspace, owner, "b@example.com", "member")
    expired.expires_at -= timedelta(days=8)
    with pytest.raises(Conflict, match="expired"):
        service.accept_invitation(service.invitation_token(expired), UserFactory(email="b@example.com"))
    with pytest.raises(NotFound):
        service.load_invitation(service.invitation_token(expired)[:-3] + "xyz")


def test_reinviting_replaces_the_pending_invitation(db):
    workspace, owner = workspace_with_owner()
    first = service.invite_member(workspace, owner, "c@example.com", "member")
    second = service.invite_member(workspace, owner, "c@example.com", "viewer")
    assert first.revoked_at is not None
    assert service.list_pending_invitations(workspace) == [second]


def test_invite_refuses_members_bad_addresses_and_owner_grants_by_admins(db):
    workspace, owner = workspace_with_owner()
    admin = MembershipFactory(workspace=workspace, role="admin").user
    with pytest.raises(Conflict, match="already a member"):
        service.invite_member(workspace, owner, admin.email.upper(), "member")
    with pytest.raises(ValidationFailed):
        service.invite_member(workspace, owner, "not-an-email", "member")
    with pytest.raises(Forbidden):
        service.invite_member(workspace, admin, "d@example.com", "owner")
    member = MembershipFactory(workspace=workspace, role="member").user
    with pytest.raises(Forbidden):
        service.invite_member(workspace, member, "d@example.com", "viewer")


def test_api_key_is_stored_hashed_with_a_display_prefix(db):
    workspace, owner = workspace_with_owner()
    key, plaintext = service.create_api_key(workspace, owner, name="CRM sync", role="member")
    assert plaintext.startswith("mk_live_") and len(plaintext) > 40
    assert key.key_hash == hash_token(plaintext) and plaintext not in key.key_hash
    assert key.prefix == plaintext[len("mk_live_") :][:8]
    service.revoke_api_key(workspace, owner, key.id)
    assert key.revoked_at is not None
    assert actions(db, workspace) == ["api_key.created", "api_key.revoked"]
    event = db.session.scalar(select(AuditEvent).where(AuditEvent.action == "api_key.created"))
    assert plaintext not in str(event.data)


def test_api_keys_are_scoped_and_role_limited(db):
    workspace, owner = workspace_with_owner()
    other, other_owner = workspace_with_owner()
    admin = MembershipFactory(workspace=workspace, role="admin").user
    member = MembershipFactory(workspace=workspace, role="member").user
    with pytest.raises(Forbidden):
        service.create_api_key(workspace, admin, name="Too strong", role="owner")
    with pytest.raises(Forbidden):
        service.create_api_key(workspace, member, name="Mine", role="viewer")
    key, _ = service.create_api_key(workspace, admin, name="Reader", role="viewer")
    with pytest.raises(NotFound):
        service.revoke_api_key(other, other_owner, key.id)
    assert service.list_api_keys(other) == []
