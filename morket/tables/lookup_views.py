"""Lookup column endpoints of the grid: the settings fields (for a chosen table), a preview, saving settings.

The add-column form and a lookup column's header menu share one fieldset (``_lookup_fields.html``):
choosing the table to look up in re-renders it with that table's columns; every change shows the
first rows' results (``lookup-preview``, a read of three rows) before anything is saved. Adding
the column goes through the add-column endpoint (``lookups.form_config`` reads these fields).
"""

from __future__ import annotations

from typing import Any

from flask import make_response, render_template, request
from flask_login import current_user

from morket.core.errors import MorketError
from morket.core.ratelimit import GRID_LIMIT
from morket.core.tenancy import workspace_page
from morket.core.types import Member, Workspace
from morket.extensions import limiter
from morket.tables import bp, column_service, lookups, service
from morket.tables.column_views import BASE, _done, _job_response, _run
from morket.tables.models import Table


@bp.get(f"{BASE}/lookup-fields")
@workspace_page("tables.manage")
def lookup_fields(workspace: Workspace, membership: Member, table_id: int):
    """The lookup fieldset for the table chosen (its key and field columns)."""
    table = service.get_table_or_404(workspace, table_id)
    config = lookups.form_config(request.args)
    return render_template(
        "tables/_lookup_fields.html",
        workspace=workspace,
        table=table,
        lookup=lookups.settings_choices(workspace, table, config),
    )


@bp.get(f"{BASE}/lookup-preview")
@workspace_page("tables.manage")
@limiter.limit(GRID_LIMIT)
def lookup_preview(workspace: Workspace, membership: Member, table_id: int):
    """The first rows' key and result for the settings in the form, before they are saved."""
    table = service.get_table_or_404(workspace, table_id)
    try:
        rows = lookups.preview(table, lookups.form_config(request.args))
    except MorketError as exc:
        # The form is still being filled in: say what is missing where the preview goes.
        return make_response(render_template("tables/_columns_error.html", message=exc.message), 200)
    return render_template("tables/_lookup_preview.html", rows=rows)


@bp.post(f"{BASE}/<int:column_id>/lookup")
@workspace_page("tables.manage")
def save_lookup(workspace: Workspace, membership: Member, table_id: int, column_id: int):
    """Save a lookup column's settings and fill it again (in a job when the tables are large)."""

    def action(table: Table) -> Any:
        _, job = column_service.set_lookup(workspace, current_user, table, column_id, lookups.form_config(request.form))
        return _job_response(workspace, table, job) if job is not None else _done(workspace, table)

    return _run(workspace, table_id, action)
