"""What other domains show on the workspace overview, registered by them: workspaces imports none of them.

Tables depends on workspaces (tenancy, the workspace model), so the overview cannot read tables
itself. A domain registers a section with ``add_overview_section``; the overview page calls each
one and hands what it returns to its template (tables: ``tables``, the tables card and whether the
sandbox offers the sample table).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from morket.workspaces.models import Membership, Workspace

OverviewSection = Callable[[Workspace, Membership], Mapping[str, Any]]

_SECTIONS: dict[str, OverviewSection] = {}


def add_overview_section(name: str, section: OverviewSection) -> None:
    """Add ``section(workspace, membership)``'s template variables to every workspace overview."""
    _SECTIONS[name] = section


def overview_context(workspace: Workspace, membership: Membership) -> dict[str, Any]:
    """The template variables of every registered section, for ``membership``'s view of ``workspace``."""
    context: dict[str, Any] = {}
    for section in _SECTIONS.values():
        context.update(section(workspace, membership))
    return context
