"""HTML pages of CSV import and export: upload, mapping, progress, records, streamed downloads."""

from __future__ import annotations

from urllib.parse import quote

from flask import (
    Response,
    request,
    stream_with_context,
)
from flask_login import current_user

from morket.core.tenancy import workspace_page
from morket.dataops import bp, service
from morket.extensions import db
from morket.tables import service as tables


def _download(body, file_name: str) -> Response:  # noqa: ANN001
    resp = Response(stream_with_context(body), mimetype="text/csv")
    resp.headers["Content-Disposition"] = f"attachment; filename*=UTF-8''{quote(file_name)}"
    resp.headers["Cache-Control"] = "no-store"
    resp.headers["X-Accel-Buffering"] = "no"
    return resp


@bp.get("/w/<slug>/tables/<int:table_id>/export.csv")
@workspace_page("tables.view")
def export_csv(workspace, membership, table_id: int):  # noqa: ANN001
    """Stream a table or one of its views as CSV straight from COPY (options: view, excel, raw)."""
    table = tables.get_table_or_404(workspace, table_id)
    view_id = request.args.get("view", type=int)
    view = tables.get_view_or_404(workspace, table, view_id) if view_id is not None else None
    plan = service.plan_export(
        workspace,
        current_user,
        table,
        view,
        excel=request.args.get("excel") == "1",
        raw=request.args.get("raw") == "1",
    )
    run = service.record_export(workspace, current_user, table, view, plan)
    db.session.commit()
    run_id = run.id

    def done(rows: int, size: int) -> None:
        service.finish_export(run_id, rows, size)
        db.session.commit()

    return _download(service.stream_export(plan, done), plan.file_name)
