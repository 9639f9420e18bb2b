"""Fixtures for the JSON API: workspaces with members of each role, and token helpers."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from morket.accounts.models import User
from morket.core.roles import ADMIN, MEMBER, OWNER, VIEWER
from morket.workspaces.models import Workspace
from tests.factories import PASSWORD, MembershipFactory, WorkspaceFactory


@dataclass
class Team:
    workspace: Workspace
    owner: User
    admin: User
    member: User
    viewer: User


def make_team() -> Team:
    """Create a workspace with one user of each ranked role."""
    workspace = WorkspaceFactory()
    users = {role: MembershipFactory(workspace=workspace, role=role).user for role in (OWNER, ADMIN, MEMBER, VIEWER)}
    return Team(workspace=workspace, **users)


@pytest.fixture
def team(db) -> Team:
    """A workspace with an owner, an admin, a member and a viewer."""
    return make_team()


@pytest.fixture
def other_team(db) -> Team:
    """A second, unrelated workspace with its own members."""
    return make_team()


@pytest.fixture
def login_api(client):
    """POST /api/v1/auth/token for a user and return the response's data (the token pair)."""

    def _login(user: User, workspace: Workspace, password: str = PASSWORD, ip: str = "10.0.0.1") -> dict:
        resp = client.post(
            "/api/v1/auth/token",
            json={"email": user.email, "password": password, "workspace": workspace.slug},
            environ_base={"REMOTE_ADDR": ip},
        )
        assert resp.status_code == 200, resp.get_json()
        return resp.get_json()["data"]

    return _login


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}
