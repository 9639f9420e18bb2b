"""A research cell's detail (the row panel loads it): the answer, its citations, every page visited.

Model output and page text are shown only through Jinja's autoescape; citation links are http(s) only.
"""

from __future__ import annotations

from flask_login import current_user

from morket.ai import bp, research_results
from morket.core.htmx import render_page_or_fragment
from morket.core.tenancy import workspace_page
from morket.core.types import Member, Workspace
from morket.tables import service as tables


@bp.get("/w/<slug>/tables/<int:table_id>/ai/<int:ai_column_id>/rows/<int:row_id>/research")
@workspace_page("enrichment.view")
def research_cell(workspace: Workspace, membership: Member, table_id: int, ai_column_id: int, row_id: int):
    """The row's research result in this column (another workspace's, table's or row's ids: 404)."""
    table = tables.get_table_or_404(workspace, table_id)
    tables.get_row(workspace, current_user, table, row_id)
    found = research_results.get_result(workspace, table, ai_column_id, row_id)
    resp = render_page_or_fragment(
        "ai/_research_cell.html", workspace=workspace, table=table, found=found,
        record=(found.record or {}) if found is not None else {},
    )  # fmt: skip
    resp.headers["Cache-Control"] = "no-store"
    return resp
