"""Credits fixtures: two workspaces with owners, and a helper that funds a workspace."""

from __future__ import annotations

import pytest

from morket.credits import service
from tests.admin.conftest import admin_client, admin_user, make_user, make_workspace  # noqa: F401 - reused here
from tests.factories import workspace_with_owner


@pytest.fixture
def owner(db):
    """Workspace A and its owner."""
    return workspace_with_owner()


@pytest.fixture
def stranger(db):
    """Workspace B and its owner, who must never see workspace A's credits."""
    return workspace_with_owner()


@pytest.fixture
def fund(db):
    """Grant ``amount`` credits to a workspace under a fresh key and return the entry."""
    counter = iter(range(1, 1_000_000))

    def _fund(workspace, amount: int):
        return service.grant(workspace.id, amount, idempotency_key=f"test-fund:{next(counter)}", note="test funds")

    return _fund
