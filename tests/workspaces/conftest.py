"""Workspace test fixtures: a browser-like client and a team holding every role."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from morket.accounts.models import User
from morket.workspaces import service
from morket.workspaces.models import ApiKey, Invitation, Membership, Workspace
from tests.factories import MembershipFactory, workspace_with_owner


@dataclass
class Team:
    workspace: Workspace
    users: dict[str, User]
    target: Membership
    invitation: Invitation
    api_key: ApiKey
    outsider: User
    other_workspace: Workspace


@pytest.fixture
def team(db) -> Team:
    """A workspace with one user per role, a viewer to act on, a pending invitation and an API key.

    ``outsider`` owns another workspace and belongs to no other.
    """
    workspace, owner = workspace_with_owner(name="Acme Growth")
    users = {"owner": owner}
    for role in ("admin", "member", "viewer", "billing_admin"):
        users[role] = MembershipFactory(workspace=workspace, role=role).user
    target = MembershipFactory(workspace=workspace, role="viewer")
    invitation = service.invite_member(workspace, owner, "pending@example.com", "member")
    api_key, _ = service.create_api_key(workspace, owner, name="CRM sync", role="member")
    other_workspace, outsider = workspace_with_owner(name="Other Co")
    # Commit (a savepoint in tests) so that a request that rolls back keeps the team.
    db.session.commit()
    return Team(workspace, users, target, invitation, api_key, outsider, other_workspace)
