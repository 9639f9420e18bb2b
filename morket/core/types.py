"""What a workspace, a membership and the acting user are to the code that receives them.

``workspace_page`` (``core/tenancy.py``) hands a view the ORM objects
(``morket.workspaces.models.Workspace`` and ``Membership``) or, on read-only hot paths, plain
records (``WorkspaceRecord``, ``MembershipRecord``) read in the same statement as the page's
data. Views and services take either, so their ``workspace`` and ``membership`` parameters are
typed by these protocols: only the attributes named here may be relied on. A record carries
``id`` and ``slug`` (and everything ``Member`` names) itself and loads its row once for anything
else, ``name`` included.
"""

from __future__ import annotations

from typing import Protocol


class Workspace(Protocol):
    """A tenant: every tenant-owned row carries its ``id``; its pages live under ``/w/<slug>/``."""

    @property
    def id(self) -> int: ...

    @property
    def slug(self) -> str: ...

    @property
    def name(self) -> str: ...


class Member(Protocol):
    """A user's membership of a workspace: the ``role`` that ``core.roles.can`` checks."""

    @property
    def id(self) -> int: ...

    @property
    def role(self) -> str: ...

    @property
    def workspace_id(self) -> int: ...

    @property
    def user_id(self) -> int: ...


class Actor(Protocol):
    """The signed-in user a service acts for: named in audit rows, ledger entries and emails.

    The ORM user (``morket.accounts.models.User``) or the session's record on read-only hot paths
    (``core.tenancy.SessionUser``, which loads the row for anything but ``id``).
    """

    @property
    def id(self) -> int: ...

    @property
    def email(self) -> str: ...

    @property
    def name(self) -> str: ...
