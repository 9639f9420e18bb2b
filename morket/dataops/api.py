"""CSV imports and exports over the JSON API: upload, map, poll and cancel imports; queue and fetch exports.

Uploads are multipart (a ``file`` field) under the import cap, not the JSON body limit. Every run is
looked up inside the token's workspace, so another workspace's ids answer 404.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal
from urllib.parse import quote

from flask import Response, current_app, request, url_for
from pydantic import Field

from morket.api.routing import Principal, api_route
from morket.api.schemas import Out, Request
from morket.core.errors import ValidationFailed
from morket.dataops import exports, service
from morket.dataops.models import DataRun
from morket.extensions import db
from morket.tables import service as tables

TAG = "Imports"
_FORM_OVERHEAD = 64 * 1024


class MappingEntry(Request):
    """Where one CSV column goes: a new column, an existing column id, or skip."""

    source: int = Field(ge=0, le=10_000, description="Position of the CSV column, from 0.")
    target: str = Field(default="new", max_length=20, description='"new", "skip" or an existing column id.')
    name: str | None = Field(default=None, max_length=120, description="Name of a new column.")
    type: str = Field(default="text", max_length=32, description="Type of a new column.")


class ImportStart(Request):
    """Start an uploaded import: its destination, mapping and optional dedupe key."""

    mapping: list[MappingEntry] = Field(min_length=1, max_length=1000)
    table_id: int | None = Field(default=None, ge=1, le=2**63 - 1, description="Append here; omit for a new table.")
    table_name: str | None = Field(default=None, max_length=120, description="Name of the new table.")
    dedupe: list[int] = Field(default_factory=list, max_length=20, description="CSV column positions of the key.")
    on_duplicate: Literal["skip", "update"] = "skip"
    skip_errors: bool = Field(default=False, description="Import good rows without waiting for a decision.")


class ImportOut(Out):
    """An import: detected format, progress and outcome."""

    id: int
    status: str
    file_name: str
    size_bytes: int
    table_id: int | None
    encoding: str | None = None
    delimiter: str | None = None
    header: list[str] = []
    detected_types: list[str] = []
    rows_in: int
    rows_out: int
    rows_updated: int
    rows_skipped: int
    error_count: int
    message: str | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None


def _out(run: DataRun) -> ImportOut:
    settings = run.settings or {}
    return ImportOut(
        id=run.id,
        status=run.status,
        file_name=run.file_name,
        size_bytes=run.size_bytes,
        table_id=run.table_id,
        encoding=settings.get("encoding"),
        delimiter=settings.get("delimiter"),
        header=settings.get("header", []),
        detected_types=settings.get("types", []),
        rows_in=run.rows_in,
        rows_out=run.rows_out,
        rows_updated=run.rows_updated,
        rows_skipped=run.rows_skipped,
        error_count=run.error_count,
        message=run.message,
        created_at=run.created_at,
        started_at=run.started_at,
        finished_at=run.finished_at,
    )


@api_route(
    "/imports",
    "POST",
    summary="Upload a CSV to import",
    tag=TAG,
    permission="tables.edit",
    response=ImportOut,
    status=201,
    errors=(413, 422),
)
def create_import(principal: Principal) -> ImportOut:
    """Send the file as multipart form data in a ``file`` field; the answer shows the detected format."""
    cap = int(current_app.config["MORKET"]["IMPORT_MAX_BYTES"])
    if (request.content_length or 0) > cap + _FORM_OVERHEAD:
        raise ValidationFailed(f"The file is larger than the import limit of {cap // (1024 * 1024):,} MB.")
    request.max_content_length = cap + _FORM_OVERHEAD
    file = request.files.get("file") if request.mimetype == "multipart/form-data" else None
    if file is None or not file.filename:
        raise ValidationFailed(
            "Send the CSV as multipart form data in a field named file.", fields={"file": ["missing"]}
        )
    try:
        run = service.upload_import(principal.workspace, principal.user, file.stream, file.filename, max_bytes=cap)
    finally:
        file.close()
    db.session.commit()
    return _out(run)


@api_route(
    "/imports/<int:run_id>", "GET", summary="An import's status", tag=TAG, permission="tables.view", response=ImportOut
)
def get_import(principal: Principal, run_id: int) -> ImportOut:
    """Poll this while the import runs; ``status`` ends as done, needs_review, failed or cancelled."""
    return _out(service.get_run_or_404(principal.workspace, run_id, kind="import"))


@api_route(
    "/imports/<int:run_id>/start",
    "POST",
    summary="Start an uploaded import",
    tag=TAG,
    permission="tables.edit",
    body=ImportStart,
    response=ImportOut,
    status=202,
)
def start_import(principal: Principal, body: ImportStart, run_id: int) -> ImportOut:
    """Map the columns and queue the load; poll the import for progress."""
    run = service.get_run_or_404(principal.workspace, run_id, kind="import")
    table = tables.get_table_or_404(principal.workspace, body.table_id) if body.table_id else None
    service.start_import(
        principal.workspace,
        principal.user,
        run,
        mapping=[entry.model_dump() for entry in body.mapping],
        table=table,
        table_name=body.table_name,
        dedupe=body.dedupe,
        on_duplicate=body.on_duplicate,
        skip_errors=body.skip_errors,
    )
    db.session.commit()
    return _out(run)


@api_route(
    "/imports/<int:run_id>/continue",
    "POST",
    summary="Import the rows without errors",
    tag=TAG,
    permission="tables.edit",
    response=ImportOut,
    status=202,
)
def continue_import(principal: Principal, run_id: int) -> ImportOut:
    """After an import stopped at needs_review, load the rows that can be read and leave the others out."""
    run = service.get_run_or_404(principal.workspace, run_id, kind="import")
    service.import_rest(principal.workspace, principal.user, run)
    db.session.commit()
    return _out(run)


@api_route(
    "/imports/<int:run_id>/cancel",
    "POST",
    summary="Cancel an import",
    tag=TAG,
    permission="tables.edit",
    response=ImportOut,
)
def cancel_import(principal: Principal, run_id: int) -> ImportOut:
    """A running import rolls back; the table stays exactly as it was."""
    run = service.get_run_or_404(principal.workspace, run_id, kind="import")
    service.cancel_run(principal.workspace, principal.user, run)
    db.session.commit()
    return _out(run)


# --- exports ----------------------------------------------------------------------------------------

EXPORTS_TAG = "Exports"


class ExportStart(Request):
    """Export a table, or one of its views (filters, sort and hidden columns), to a CSV file."""

    view_id: int | None = Field(default=None, ge=1, le=2**63 - 1, description="Export this view; omit for the table.")
    excel: bool = Field(default=False, description="UTF-8 with a byte order mark, for Excel.")
    raw: bool = Field(default=False, description="Keep values that start like formulas as they are (for re-importing).")


class ExportOut(Out):
    """A background export: its progress and, once ready, where to download it."""

    id: int
    state: Literal["queued", "running", "ready", "expired", "failed"]
    file_name: str
    table_id: int | None
    view_id: int | None
    rows_expected: int
    rows_out: int
    size_bytes: int
    message: str | None
    created_at: datetime
    finished_at: datetime | None
    expires_at: datetime | None
    status_url: str
    download_url: str | None = Field(description="Present while the file can be downloaded (bearer auth).")


def _export_out(run: DataRun) -> ExportOut:
    state = exports.export_state(run)
    return ExportOut(
        id=run.id,
        state=state,
        file_name=run.file_name,
        table_id=run.table_id,
        view_id=run.view_id,
        rows_expected=run.settings.get("rows_expected", 0),
        rows_out=run.rows_out,
        size_bytes=run.size_bytes,
        message=run.message,
        created_at=run.created_at,
        finished_at=run.finished_at,
        expires_at=exports.expires_at(run),
        status_url=url_for("api.get_export", export_id=run.id, _external=True),
        download_url=url_for("api.download_export", export_id=run.id, _external=True) if state == "ready" else None,
    )


@api_route(
    "/tables/<int:table_id>/exports",
    "POST",
    summary="Export a table or view to CSV",
    tag=EXPORTS_TAG,
    permission="tables.view",
    body=ExportStart,
    response=ExportOut,
    status=202,
)
def create_export(principal: Principal, body: ExportStart, table_id: int) -> ExportOut:
    """Queue the export; poll ``status_url`` until ``state`` is ready, then fetch ``download_url``."""
    table = tables.get_table_or_404(principal.workspace, table_id)
    view = tables.get_view_or_404(principal.workspace, table, body.view_id) if body.view_id else None
    run = exports.start_export(principal.workspace, principal.user, table, view, excel=body.excel, raw=body.raw)
    db.session.commit()
    return _export_out(run)


@api_route(
    "/exports/<int:export_id>",
    "GET",
    summary="An export's status",
    tag=EXPORTS_TAG,
    permission="tables.view",
    response=ExportOut,
)
def get_export(principal: Principal, export_id: int) -> ExportOut:
    """``state`` moves from queued to running to ready; the file stays downloadable for seven days."""
    return _export_out(exports.get_export_or_404(principal.workspace, export_id))


@api_route(
    "/exports/<int:export_id>/download",
    "GET",
    summary="Download an export's CSV",
    tag=EXPORTS_TAG,
    permission="tables.view",
    media_type="text/csv",
    errors=(409, 410),
)
def download_export(principal: Principal, export_id: int) -> Response:
    """The CSV file itself; 409 while it is still being written, 410 once it expired or when it failed."""
    run = exports.get_export_or_404(principal.workspace, export_id)
    path = exports.open_export(principal.workspace, run)
    resp = Response(exports.read_file(path), mimetype="text/csv")
    resp.headers["Content-Disposition"] = f"attachment; filename*=UTF-8''{quote(run.file_name)}"
    resp.headers["Cache-Control"] = "no-store"
    return resp
