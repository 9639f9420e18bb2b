"""What the workspace's own pages show of its tables: the overview's tables card, the sidebar's recent
tables, the command palette's table search, and the sandbox's "Start with a sample table".

Tables depends on workspaces, so workspaces imports nothing from here: the overview's card is a
section registered with ``workspaces.overview`` (in ``tables.register``), the sidebar's list is a
template global, and the sample table's route is this blueprint's (its URL is under the workspace's).
"""

from __future__ import annotations

from typing import Any

from flask import current_app, flash, redirect, request, url_for
from flask_login import current_user
from werkzeug.wrappers import Response

from morket.core.api import api_error, api_ok
from morket.core.ratelimit import GRID_LIMIT
from morket.core.roles import can
from morket.core.tenancy import workspace_page
from morket.core.types import Member, Workspace
from morket.extensions import db, limiter
from morket.tables import bp, sample, service
from morket.tables.access import find_tables
from morket.tables.models import Table

SIDEBAR_TABLES = 8
PALETTE_TABLES = 20
PALETTE_QUERY_CHARS = 120


def overview_tables(workspace: Workspace, membership: Member) -> dict[str, Any]:
    """The overview's ``tables``: the workspace's tables, or None for a role that may not see them."""
    return {"tables": service.list_tables(workspace) if can(membership.role, "tables.view") else None}


@bp.app_template_global("sidebar_tables")
def sidebar_tables(workspace: Workspace, membership: Member) -> list[Table]:
    """Return up to ``SIDEBAR_TABLES`` of the workspace's tables for the sidebar, newest first.

    The browser moves the tables this user opened last to the top (it remembers them locally).
    """
    if not can(membership.role, "tables.view"):
        return []
    return service.list_newest_tables(workspace, SIDEBAR_TABLES)


@bp.get("/w/<slug>/tables/palette")
@workspace_page("tables.view")
@limiter.limit(GRID_LIMIT)
def palette_tables(workspace: Workspace, membership: Member):
    """The command palette's table search: up to 20 tables whose name contains ``q``, newest first.

    Only where to go: the palette lists no action on a table, so a viewer gets the same answer.
    """
    query = request.args.get("q", "")
    if len(query) > PALETTE_QUERY_CHARS or "\x00" in query:
        return api_error(
            "validation_error",
            f"Search for at most {PALETTE_QUERY_CHARS} characters of a table's name.",
            status=400,
            fields={"q": ["too long"]},
        )
    found = [
        {
            "id": table.id,
            "name": table.name,
            "folder": table.folder,
            "url": url_for("tables.grid", slug=workspace.slug, table_id=table.id),
        }
        for table in find_tables(workspace, query, PALETTE_TABLES)
    ]
    response, status = api_ok({"tables": found})
    response.headers["Cache-Control"] = "no-store"
    return response, status


@bp.post("/w/<slug>/sample-table")
@workspace_page("tables.manage")
def create_sample_table(workspace: Workspace, membership: Member) -> Response:
    table = sample.create_sample_table(
        workspace, current_user, membership, sandbox=current_app.config["MORKET"]["SANDBOX_MODE"]
    )
    db.session.commit()
    flash(f"{table.name} is ready: 25 companies to try enrichment on. Add a column to find what is missing.", "success")
    return redirect(url_for("tables.grid", slug=workspace.slug, table_id=table.id))
