"""HTML pages of CSV import and export: upload, mapping, progress, records, streamed downloads."""

from __future__ import annotations

from collections.abc import Iterator
from urllib.parse import quote

from flask import (
    Response,
    current_app,
    flash,
    redirect,
    request,
    stream_with_context,
    url_for,
)
from flask_login import current_user
from werkzeug.datastructures import MultiDict

from morket.core.errors import MorketError, ValidationFailed
from morket.core.htmx import render_page_or_fragment
from morket.core.tenancy import workspace_page
from morket.core.types import Member, Workspace
from morket.dataops import bp, csvio, exports, service
from morket.dataops.models import DataRun
from morket.extensions import csrf, db
from morket.tables import service as tables
from morket.tables.models import Table


def _download(body: Iterator[bytes], file_name: str) -> Response:
    resp = Response(stream_with_context(body), mimetype="text/csv")
    resp.headers["Content-Disposition"] = f"attachment; filename*=UTF-8''{quote(file_name)}"
    resp.headers["Cache-Control"] = "no-store"
    resp.headers["X-Accel-Buffering"] = "no"
    return resp


@bp.get("/w/<slug>/tables/<int:table_id>/export.csv")
@workspace_page("tables.view")
def export_csv(workspace: Workspace, membership: Member, table_id: int):
    """Stream a table or one of its views as CSV straight from COPY (options: view, excel, raw)."""
    table = tables.get_table_or_404(workspace, table_id)
    view_id = request.args.get("view", type=int)
    view = tables.get_view_or_404(workspace, table, view_id) if view_id is not None else None
    excel, raw = request.args.get("excel") == "1", request.args.get("raw") == "1"
    if exports.runs_in_background(workspace, current_user, table, view):
        exports.start_export(workspace, current_user, table, view, excel=excel, raw=raw)
        db.session.commit()
        flash("This export is large, so it runs in the background. We will email you a download link.", "info")
        return redirect(url_for("dataops.exports_page", slug=workspace.slug))
    plan = service.plan_export(workspace, current_user, table, view, excel=excel, raw=raw)
    run = service.record_export(workspace, current_user, table, view, plan)
    db.session.commit()
    run_id = run.id

    def done(rows: int, size: int) -> None:
        service.finish_export(run_id, rows, size)
        db.session.commit()

    return _download(service.stream_export(plan, done), plan.file_name)


@bp.get("/w/<slug>/export")
@workspace_page("tables.view")
def export_redirect(workspace: Workspace, membership: Member):
    """Send the export form of the imports page to the table's streamed CSV."""
    table = tables.get_table_or_404(workspace, request.args.get("table_id", type=int) or 0)
    options = {key: "1" for key in ("excel", "raw") if request.args.get(key) == "1"}
    return redirect(url_for("dataops.export_csv", slug=workspace.slug, table_id=table.id, **options))


# --- import pages -----------------------------------------------------------------------------------

# Room for the multipart envelope around the file on top of the import cap.
_FORM_OVERHEAD = 64 * 1024
TYPE_LABELS = {
    "text": "Text",
    "long_text": "Long text",
    "number": "Number",
    "currency": "Currency",
    "percent": "Percent",
    "date": "Date",
    "datetime": "Date and time",
    "checkbox": "Checkbox",
    "email": "Email",
    "url": "URL",
    "phone": "Phone",
    "domain": "Domain",
    "json": "JSON",
}


def _imports_page(
    workspace: Workspace, membership: Member, *, table: Table | None = None, error: str | None = None, status: int = 200
):
    cap = int(current_app.config["MORKET"]["IMPORT_MAX_BYTES"])
    runs = service.list_runs(workspace)
    return render_page_or_fragment(
        "dataops/imports.html",
        status,
        workspace=workspace,
        membership=membership,
        runs=runs,
        authors=service.run_authors(workspace, runs),
        tables=tables.list_tables(workspace),
        target=table,
        error=error,
        cap_mb=cap // (1024 * 1024),
    )


@bp.get("/w/<slug>/imports")
@workspace_page("tables.view")
def imports(workspace: Workspace, membership: Member):
    """Upload a CSV, export a table, and see every import and export of the workspace."""
    return _imports_page(workspace, membership)


@bp.get("/w/<slug>/tables/<int:table_id>/import")
@workspace_page("tables.edit")
def import_into(workspace: Workspace, membership: Member, table_id: int):
    """The upload page with a table chosen as the destination."""
    return _imports_page(workspace, membership, table=tables.get_table_or_404(workspace, table_id))


@csrf.exempt
@bp.post("/w/<slug>/imports")
@workspace_page("tables.edit")
def upload(workspace: Workspace, membership: Member):
    """Receive a CSV (the import cap replaces the general upload limit on this route only).

    The app-wide CSRF check would parse the body under the general limit before this view could
    raise it, so this route checks the token itself once the limit is set.
    """
    cap = int(current_app.config["MORKET"]["IMPORT_MAX_BYTES"])
    if (request.content_length or 0) > cap + _FORM_OVERHEAD:
        return _imports_page(
            workspace,
            membership,
            error=f"The file is larger than the import limit of {cap // (1024 * 1024):,} MB.",
            status=413,
        )
    request.max_content_length = cap + _FORM_OVERHEAD
    csrf.protect()
    table_id = request.form.get("table_id", type=int)
    table = tables.get_table_or_404(workspace, table_id) if table_id else None
    file = request.files.get("file")
    if file is None or not file.filename:
        return _imports_page(workspace, membership, table=table, error="Choose a CSV file to upload.", status=422)
    try:
        run = service.upload_import(workspace, current_user, file.stream, file.filename, max_bytes=cap)
    except ValidationFailed as exc:
        db.session.rollback()
        return _imports_page(workspace, membership, table=table, error=exc.message, status=422)
    finally:
        file.close()  # werkzeug spooled the upload to a temporary file; release it now
    if table is not None:
        run.table_id = table.id
    db.session.commit()
    return redirect(url_for("dataops.import_run", slug=workspace.slug, run_id=run.id))


def _auto_target(name: str, table: Table | None) -> str:
    if table is None:
        return "new"
    for column in table.live_columns:
        if column.name.casefold() == name.casefold():
            return str(column.id)
    return "new"


def _run_page(
    workspace: Workspace,
    membership: Member,
    run: DataRun,
    *,
    error: str | None = None,
    status: int = 200,
    values: MultiDict[str, str] | None = None,
):
    values = values or {}
    context = {
        "workspace": workspace,
        "membership": membership,
        "run": run,
        "error": error,
        "values": values,
        "dedupe_chosen": values.getlist("dedupe") if hasattr(values, "getlist") else [],
    }
    if run.status == "uploaded":
        table_id = request.args.get("table", type=int, default=run.table_id)
        table = tables.get_table_or_404(workspace, table_id) if table_id else None
        context.update(
            sniffed=service.preview_import(workspace, run),
            table=table,
            tables=tables.list_tables(workspace),
            auto_target=lambda name: _auto_target(name, table),
            importable_types=[t for t in service.IMPORTABLE_TYPES if t in TYPE_LABELS],
            encodings=csvio.ENCODING_LABELS,
        )
    else:
        context.update(_outcome_context(workspace, run))
    return render_page_or_fragment("dataops/import_run.html", status, type_labels=TYPE_LABELS, **context)


def _outcome_context(workspace: Workspace, run: DataRun) -> dict:
    """What the progress panel shows: progress, the table's link, and the lines that could not be read."""
    return {
        "progress": _progress(run),
        "table_url": _table_url(workspace, run.table_id),
        "warning": service.import_warning(run),
        "error_sample": run.settings.get("error_sample", []),
    }


def _table_url(workspace: Workspace, table_id: int | None) -> str | None:
    if table_id is None:
        return None
    return url_for("tables.grid", slug=workspace.slug, table_id=table_id)


def _progress(run: DataRun) -> dict:
    """Rows done, rows per second and time left, from the run's last progress write."""
    from morket.core.db import utcnow

    percent = min(100, round(100 * run.bytes_done / run.size_bytes)) if run.size_bytes else 0
    if run.status in ("done", "needs_review"):
        percent = 100
    elapsed = ((run.finished_at or utcnow()) - run.started_at).total_seconds() if run.started_at else 0
    rate = run.rows_in / elapsed if elapsed > 0 else 0
    left = None
    if run.status == "running" and run.bytes_done and elapsed > 0:
        left = max(0, round(elapsed * (run.size_bytes - run.bytes_done) / run.bytes_done))
    return {"percent": percent, "rate": round(rate), "left": left}


@bp.get("/w/<slug>/imports/<int:run_id>")
@workspace_page("tables.view")
def import_run(workspace: Workspace, membership: Member, run_id: int):
    """Map an uploaded file, or follow an import's progress and outcome."""
    return _run_page(workspace, membership, service.get_run_or_404(workspace, run_id, kind="import"))


@bp.get("/w/<slug>/imports/<int:run_id>/progress")
@workspace_page("tables.view")
def import_progress(workspace: Workspace, membership: Member, run_id: int):
    """The progress panel, polled by htmx; answers 286 (stop polling) once nothing more will change."""
    run = service.get_run_or_404(workspace, run_id, kind="import")
    context = _outcome_context(workspace, run)
    resp = render_page_or_fragment(
        "dataops/_progress.html", workspace=workspace, membership=membership, run=run, **context
    )
    if run.status not in ("queued", "running"):
        resp.status_code = 286
    return resp


def _mapping_from_form(run: DataRun) -> list[dict]:
    mapping = []
    for index, name in enumerate(run.settings["header"]):
        mapping.append(
            {
                "source": index,
                "target": request.form.get(f"target_{index}", "skip"),
                "type": request.form.get(f"type_{index}", "text"),
                "name": request.form.get(f"name_{index}", name),
            }
        )
    return mapping


@bp.post("/w/<slug>/imports/<int:run_id>/encoding")
@workspace_page("tables.edit")
def change_encoding(workspace: Workspace, membership: Member, run_id: int):
    """Read the uploaded file again in the encoding the user chose over the detected one."""
    run = service.get_run_or_404(workspace, run_id, kind="import")
    try:
        service.change_import_encoding(workspace, current_user, run, request.form.get("encoding", ""))
    except MorketError as exc:
        db.session.rollback()
        run = service.get_run_or_404(workspace, run_id, kind="import")
        return _run_page(workspace, membership, run, error=exc.message, status=exc.status)
    db.session.commit()
    table_id = request.form.get("table", type=int)
    return redirect(url_for("dataops.import_run", slug=workspace.slug, run_id=run.id, table=table_id))


@bp.post("/w/<slug>/imports/<int:run_id>/start")
@workspace_page("tables.edit")
def start(workspace: Workspace, membership: Member, run_id: int):
    """Start the import with the chosen destination, mapping and dedupe key."""
    run = service.get_run_or_404(workspace, run_id, kind="import")
    table_id = request.form.get("table_id", type=int)
    try:
        table = tables.get_table_or_404(workspace, table_id) if table_id else None
        service.start_import(
            workspace,
            current_user,
            run,
            mapping=_mapping_from_form(run),
            table=table,
            table_name=request.form.get("table_name", ""),
            dedupe=[int(v) for v in request.form.getlist("dedupe") if v.isdigit()],
            on_duplicate=request.form.get("on_duplicate", "skip"),
            skip_errors=request.form.get("skip_errors") == "1",
        )
    except MorketError as exc:
        db.session.rollback()
        run = service.get_run_or_404(workspace, run_id, kind="import")
        return _run_page(workspace, membership, run, error=exc.message, status=exc.status, values=request.form)
    db.session.commit()
    return redirect(url_for("dataops.import_run", slug=workspace.slug, run_id=run.id))


@bp.post("/w/<slug>/imports/<int:run_id>/continue")
@workspace_page("tables.edit")
def import_rest(workspace: Workspace, membership: Member, run_id: int):
    """Import the rows without errors, leaving the listed error rows out."""
    run = service.get_run_or_404(workspace, run_id, kind="import")
    service.import_rest(workspace, current_user, run)
    db.session.commit()
    return redirect(url_for("dataops.import_run", slug=workspace.slug, run_id=run.id))


@bp.post("/w/<slug>/imports/<int:run_id>/cancel")
@workspace_page("tables.edit")
def cancel(workspace: Workspace, membership: Member, run_id: int):
    """Cancel an import; a running one rolls back and leaves the table as it was."""
    run = service.get_run_or_404(workspace, run_id, kind="import")
    service.cancel_run(workspace, current_user, run)
    db.session.commit()
    flash("The import is being cancelled; the table stays as it was.", "info")
    return redirect(url_for("dataops.import_run", slug=workspace.slug, run_id=run.id))


@bp.get("/w/<slug>/imports/<int:run_id>/errors.csv")
@workspace_page("tables.view")
def import_errors(workspace: Workspace, membership: Member, run_id: int):
    """Download the rows that could not be imported, with their line numbers and reasons."""
    run = service.get_run_or_404(workspace, run_id, kind="import")
    stem = run.file_name.rsplit(".", 1)[0] or "import"
    return _download(service.read_errors(run), f"{stem} - errors.csv")


# --- background exports -----------------------------------------------------------------------------


def _exports_context(workspace: Workspace, membership: Member) -> dict:
    runs = exports.list_exports(workspace)
    return {
        "workspace": workspace,
        "membership": membership,
        "runs": runs,
        "states": {run.id: exports.export_state(run) for run in runs},
        "links": {run.id: exports.link_token(run) for run in runs},
        "authors": service.run_authors(workspace, runs),
        "expires_at": exports.expires_at,
    }


@bp.get("/w/<slug>/exports")
@workspace_page("tables.view")
def exports_page(workspace: Workspace, membership: Member):
    """Large exports running in the background, and their files until the links expire."""
    return render_page_or_fragment("dataops/exports.html", **_exports_context(workspace, membership))


@bp.get("/w/<slug>/exports/list")
@workspace_page("tables.view")
def exports_list(workspace: Workspace, membership: Member):
    """The exports table, polled by htmx while one runs; answers 286 once none is running."""
    context = _exports_context(workspace, membership)
    resp = render_page_or_fragment("dataops/exports_table.html", **context)
    if not any(state in ("queued", "running") for state in context["states"].values()):
        resp.status_code = 286
    return resp


@bp.get("/w/<slug>/exports/download/<token>")
@workspace_page("tables.view")
def download_export(workspace: Workspace, membership: Member, token: str):
    """Download a background export through its signed link; 410 with an explanation once it expired."""
    try:
        run = exports.get_export_or_404(workspace, exports.read_link(workspace, token))
        path = exports.open_export(workspace, run)
    except exports.ExportGone as exc:
        return render_page_or_fragment(
            "dataops/exports_gone.html", 410, workspace=workspace, membership=membership, reason=exc.message
        )
    return _download(exports.read_file(path), run.file_name)
