"""factory_boy factories for users, workspaces and memberships, plus log-in and CSRF helpers.

Factories flush into the test's savepoint session (``db`` fixture), so their rows vanish with it.
"""

from __future__ import annotations

import re
from functools import cache

import factory
from factory.alchemy import SQLAlchemyModelFactory

from morket.accounts.models import User
from morket.core.db import utcnow
from morket.core.roles import MEMBER, OWNER
from morket.core.security import hash_password
from morket.extensions import db
from morket.workspaces.models import Membership, Workspace

PASSWORD = "correct horse battery"
_CSRF_INPUT = re.compile(r'name="csrf_token"[^>]*value="([^"]+)"|value="([^"]+)"[^>]*name="csrf_token"')


@cache
def _password_hash(password: str) -> str:
    # argon2id is deliberately slow; hash each distinct test password once per session.
    return hash_password(password)


def _session():
    return db.session


class BaseFactory(SQLAlchemyModelFactory):
    class Meta:
        abstract = True
        sqlalchemy_session_factory = _session
        sqlalchemy_session_persistence = "flush"


class UserFactory(BaseFactory):
    """A verified, active user whose password is ``PASSWORD`` unless ``password=`` is given."""

    class Meta:
        model = User
        exclude = ("password",)

    email = factory.Sequence(lambda n: f"user{n}@example.com")
    name = factory.Sequence(lambda n: f"User {n}")
    password = PASSWORD
    password_hash = factory.LazyAttribute(lambda o: _password_hash(o.password))
    email_verified_at = factory.LazyFunction(utcnow)


class WorkspaceFactory(BaseFactory):
    class Meta:
        model = Workspace

    name = factory.Sequence(lambda n: f"Workspace {n}")
    slug = factory.Sequence(lambda n: f"workspace-{n}")


class MembershipFactory(BaseFactory):
    """A user's membership in a workspace (both created unless given); role defaults to member."""

    class Meta:
        model = Membership

    workspace = factory.SubFactory(WorkspaceFactory)
    user = factory.SubFactory(UserFactory)
    role = MEMBER


def workspace_with_owner(**kwargs) -> tuple[Workspace, User]:
    """Create a workspace and its owner; keyword arguments go to the workspace."""
    membership = MembershipFactory(workspace=WorkspaceFactory(**kwargs), role=OWNER)
    return membership.workspace, membership.user


def login(client, user: User, password: str = PASSWORD) -> None:
    """Log ``user`` in on ``client``: a server-side session, as the log-in page starts, in its cookie."""
    from morket.accounts.service import start_session

    del password  # kept for call-site symmetry with the real form; the session needs no password
    with client.session_transaction() as session:
        session["_user_id"] = start_session(user)
        session["_fresh"] = True


def csrf_token(client, path: str) -> str:
    """GET ``path`` and return the value of its hidden csrf_token input."""
    resp = client.get(path)
    assert resp.status_code == 200, f"GET {path} answered {resp.status_code}"
    match = _CSRF_INPUT.search(resp.get_data(as_text=True))
    assert match, f"no csrf_token input on {path}"
    return match.group(1) or match.group(2)
