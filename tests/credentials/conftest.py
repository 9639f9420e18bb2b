"""Fixtures for the credentials tests: a workspace with every role, a stranger, and API token helpers."""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import pytest

from morket.accounts.models import User
from morket.workspaces.models import Workspace
from tests.factories import PASSWORD, MembershipFactory, workspace_with_owner

_IPS = itertools.count(1)


@dataclass
class Team:
    workspace: Workspace
    users: dict[str, User]

    def __getitem__(self, role: str) -> User:
        return self.users[role]


def make_team(name: str) -> Team:
    """Create a workspace with one user of each role (billing_admin included)."""
    workspace, owner = workspace_with_owner(name=name)
    users = {"owner": owner}
    for role in ("admin", "member", "viewer", "billing_admin"):
        users[role] = MembershipFactory(workspace=workspace, role=role).user
    return Team(workspace, users)


@pytest.fixture
def team(db) -> Team:
    """Workspace A, whose keys the tests store."""
    return make_team("Acme Growth")


@pytest.fixture
def stranger(db) -> Team:
    """Workspace B, which must never see or use workspace A's keys."""
    return make_team("Other Co")


@pytest.fixture
def access_token(client):
    """Return a function giving a user's access token for a workspace (each from its own address)."""

    def _token(user: User, workspace: Workspace) -> str:
        resp = client.post(
            "/api/v1/auth/token",
            json={"email": user.email, "password": PASSWORD, "workspace": workspace.slug},
            environ_base={"REMOTE_ADDR": f"10.9.{next(_IPS) % 250}.{next(_IPS) % 250}"},
        )
        assert resp.status_code == 200, resp.get_json()
        return resp.get_json()["data"]["access_token"]

    return _token


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}
