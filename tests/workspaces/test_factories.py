from morket.core.security import verify_password
from tests.factories import PASSWORD, MembershipFactory, UserFactory, workspace_with_owner


def test_factories_build_verified_users_and_memberships(db):
    user = UserFactory()
    assert user.is_verified and verify_password(user.password_hash, PASSWORD)
    workspace, owner = workspace_with_owner(name="Acme")
    membership = MembershipFactory(workspace=workspace, user=user)
    assert membership.workspace_id == workspace.id and membership.role == "member"
    assert owner.id != user.id
