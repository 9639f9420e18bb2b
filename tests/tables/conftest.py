"""Fixtures for the tables tests: two workspaces with one member each, and a seeded table."""

from __future__ import annotations

import itertools

import pytest

from morket.tables import service
from tests.support.seeding import seed_rows

_counter = itertools.count(1)


def _workspace_and_user(db, label: str):
    from morket.accounts.models import User
    from morket.workspaces.models import Membership, Workspace

    n = next(_counter)
    user = User(email=f"{label}{n}@example.com", name=label, password_hash="not-a-real-hash")
    workspace = Workspace(slug=f"{label}-{n}", name=f"{label} {n}")
    db.session.add_all([user, workspace])
    db.session.flush()
    db.session.add(Membership(workspace_id=workspace.id, user_id=user.id, role="owner"))
    db.session.flush()
    return workspace, user


@pytest.fixture
def owner(db):
    """Workspace A and its owner."""
    return _workspace_and_user(db, "alpha")


@pytest.fixture
def stranger(db):
    """Workspace B and its owner, who must never see workspace A's tables."""
    return _workspace_and_user(db, "beta")


BASIC_COLUMNS = (
    {"name": "Company", "type": "text"},
    {"name": "Employees", "type": "number"},
    {"name": "Stage", "type": "single_select", "config": {"options": ["Lead", "Customer", "Churned"]}},
    {"name": "Founded", "type": "date"},
    {"name": "Active", "type": "checkbox"},
)


@pytest.fixture
def seeded(db, owner):
    """A 1,000-row table with five typed columns, loaded with COPY."""
    workspace, user = owner
    table = service.create_table(workspace, user, "Accounts", columns=BASIC_COLUMNS)
    seed_rows(workspace, user, table, 1000, seed=7)
    return table
