"""Admin console fixtures: users made directly in the test transaction, and a browser log-in."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from morket.accounts.models import User
from morket.workspaces.models import Membership, Workspace


@pytest.fixture
def make_user(db):
    """Create a user (verified unless told otherwise) and return it."""

    def _make(email: str, *, name: str = "", admin: bool = False, verified: bool = True) -> User:
        user = User(
            email=email,
            name=name,
            password_hash="!",
            is_platform_admin=admin,
            email_verified_at=datetime.now(UTC) if verified else None,
        )
        db.session.add(user)
        # Committed (to the test's savepoint) like data that existed before the request: a view's
        # rollback on an error must not take it away.
        db.session.commit()
        return user

    return _make


@pytest.fixture
def make_workspace(db):
    """Create a workspace with ``members`` given as (user, role) pairs."""

    def _make(name: str, slug: str, members: list[tuple[User, str]]) -> Workspace:
        workspace = Workspace(name=name, slug=slug)
        db.session.add(workspace)
        db.session.flush()
        db.session.add_all(Membership(workspace_id=workspace.id, user_id=u.id, role=r) for u, r in members)
        db.session.commit()
        return workspace

    return _make


def log_in(client, user: User) -> None:
    """Give ``client`` a browser session for ``user``, as the log-in page would."""
    from morket.accounts.service import start_session

    with client.session_transaction() as session:
        session["_user_id"] = start_session(user)
        session["_fresh"] = True


@pytest.fixture
def admin_user(make_user):
    return make_user("root@morket.test", name="Rita Root", admin=True)


@pytest.fixture
def admin_client(app, client, admin_user):
    log_in(client, admin_user)
    return client
