"""Background CSV exports: a job writes the file with COPY, the requester gets an emailed link that expires.

Exports of more rows than ``EXPORT_BACKGROUND_ROWS`` do not hold a request open: the run is queued
on the io queue, the job streams COPY … TO STDOUT into a file under the data folder, and the link in
the email (signed, seven days) downloads it for members of the workspace. A periodic clean-up
deletes the files once their links have expired.
"""

from __future__ import annotations

import os
import time
from datetime import datetime, timedelta
from pathlib import Path

from flask import current_app
from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer
from sqlalchemy import select

from morket.core.db import utcnow
from morket.core.errors import Conflict, MorketError, NotFound
from morket.core.jobs import QUEUE_IO, enqueue_after_commit
from morket.core.security import new_token
from morket.core.text import plural
from morket.core.types import Actor, Workspace
from morket.dataops import loading, service
from morket.dataops.models import DataRun
from morket.extensions import db
from morket.tables import service as tables
from morket.tables.models import Table, View

LINK_SALT = "morket-export-link"
LINK_DAYS = 7
LINK_MAX_AGE = LINK_DAYS * 24 * 3600


class ExportGone(MorketError):
    """The export's link expired or its file was cleaned up."""

    status = 410
    code = "gone"


# --- files and links --------------------------------------------------------------------------------


def export_path(run: DataRun) -> Path:
    """Return where the file of a background export lives (a random part keeps names unguessable)."""
    return service.data_dir() / f"export-{run.workspace_id}-{run.id}-{run.settings['token']}.csv"


def _serializer() -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(current_app.config["SECRET_KEY"], salt=LINK_SALT)


def link_token(run: DataRun) -> str:
    """Return the signed token of an export's download link (run and workspace inside)."""
    return _serializer().dumps({"run": run.id, "workspace": run.workspace_id})


def read_link(workspace: Workspace, token: str) -> int:
    """Return the run id of a download link of ``workspace``; NotFound if forged, ExportGone if expired."""
    try:
        data = _serializer().loads(token, max_age=LINK_MAX_AGE)
    except SignatureExpired:
        raise ExportGone("This download link has expired. Export the table again for a fresh file.") from None
    except BadSignature:
        raise NotFound("This download link is not valid.") from None
    if not isinstance(data, dict) or data.get("workspace") != workspace.id or not isinstance(data.get("run"), int):
        raise NotFound("This download link is not valid.")
    return data["run"]


def expires_at(run: DataRun) -> datetime | None:
    """Return when a finished background export stops being downloadable."""
    if run.finished_at is None or run.status != "done":
        return None
    return run.finished_at + timedelta(days=LINK_DAYS)


def export_state(run: DataRun, now: datetime | None = None) -> str:
    """Return queued, running, ready, expired or failed for a background export."""
    if run.status in ("queued", "running"):
        return run.status
    if run.status != "done":
        return "failed"
    expiry = expires_at(run)
    if run.settings.get("removed") or expiry is None or expiry <= (now or utcnow()):
        return "expired"
    return "ready"


# --- reads ------------------------------------------------------------------------------------------


def get_export_or_404(workspace: Workspace, run_id: int) -> DataRun:
    """Return the workspace's background export ``run_id``, or raise NotFound."""
    run = service.get_run_or_404(workspace, run_id, kind="export")
    if not run.settings.get("background"):
        raise NotFound("That export does not exist.")
    return run


def list_exports(workspace: Workspace, *, limit: int = 100) -> list[DataRun]:
    """Return the workspace's latest background exports, newest first."""
    return list(
        db.session.scalars(
            select(DataRun)
            .where(
                DataRun.workspace_id == workspace.id,
                DataRun.kind == "export",
                DataRun.settings["background"].as_boolean().is_(True),
            )
            .order_by(DataRun.created_at.desc(), DataRun.id.desc())
            .limit(limit)
        )
    )


def open_export(workspace: Workspace, run: DataRun) -> Path:
    """Return the file of a ready export of ``workspace``; ExportGone once expired or cleaned up."""
    if run.workspace_id != workspace.id:
        raise NotFound("That export does not exist.")
    state = export_state(run)
    if state in ("queued", "running"):
        raise Conflict("This export is still being written; it can be downloaded when it is ready.")
    if state == "failed":
        raise ExportGone("This export failed, so there is no file to download. Export the table again.")
    path = export_path(run)
    if state == "expired" or not path.exists():
        raise ExportGone("This export has expired and its file was deleted. Export the table again for a fresh file.")
    return path


def read_file(path: Path):
    """Yield a file's bytes in chunks (the file is opened now, so a later clean-up cannot break the download)."""
    handle = open(path, "rb")  # noqa: SIM115 - closed by the generator

    def chunks():
        with handle:
            while chunk := handle.read(service.EXPORT_CHUNK):
                yield chunk

    return chunks()


# --- starting ---------------------------------------------------------------------------------------


def runs_in_background(workspace: Workspace, actor: Actor, table: Table, view: View | None) -> bool:
    """Return whether exporting ``view`` (or the whole table) is above the background threshold."""
    limit = int(current_app.config["MORKET"]["EXPORT_BACKGROUND_ROWS"])
    return tables.count_rows(workspace, actor, table, view) > limit


def start_export(
    workspace: Workspace, actor: Actor, table: Table, view: View | None, *, excel: bool, raw: bool
) -> DataRun:
    """Record a background export of a view (or the whole table) and queue the job that writes its file."""
    plan = service.plan_export(workspace, actor, table, view, excel=excel, raw=raw)
    run = DataRun(
        workspace_id=workspace.id,
        kind="export",
        status="queued",
        created_by_id=getattr(actor, "id", None),
        table_id=table.id,
        view_id=view.id if view is not None else None,
        file_name=plan.file_name,
        settings={
            "background": True,
            "excel": excel,
            "raw": raw,
            "token": new_token(16),
            "rows_expected": tables.count_rows(workspace, actor, table, view),
        },
    )
    db.session.add(run)
    db.session.flush()
    enqueue_after_commit(run_export, run.id, queue=QUEUE_IO, job_id=f"export-{run.id}")
    return run


# --- the job ----------------------------------------------------------------------------------------


def run_export(run_id: int) -> None:
    """Write a queued export's file with COPY, mark it done and email its link (a finished run stops early).

    A run left ``running`` by a worker that died is written again from the start when RQ retries it.
    """
    run = db.session.get(DataRun, run_id)
    if run is None or run.status not in ("queued", "running"):
        return
    progress = loading.Progress(run.id)
    started = utcnow()
    progress.write(status="running", started_at=started, rows_out=0, size_bytes=0)
    try:
        rows, size = _write_file(run, progress)
    except (MorketError, OSError) as exc:
        db.session.rollback()
        message = exc.message if isinstance(exc, MorketError) else "The export file could not be written."
        run = db.session.get(DataRun, run_id, populate_existing=True)
        run.status, run.message, run.started_at, run.finished_at = "failed", message, started, utcnow()
        return
    run = db.session.get(DataRun, run_id, populate_existing=True)
    run.status, run.rows_out, run.size_bytes = "done", rows, size
    run.started_at, run.finished_at = started, utcnow()
    run.message = f"{plural(rows, 'row')} exported."
    db.session.flush()
    _email_link(run)


def _write_file(run: DataRun, progress: loading.Progress) -> tuple[int, int]:
    from morket.accounts.models import User
    from morket.workspaces.models import Workspace

    workspace = db.session.get(Workspace, run.workspace_id)
    actor = db.session.get(User, run.created_by_id) if run.created_by_id else None
    table = tables.get_table_or_404(workspace, run.table_id or 0)
    view = tables.get_view_or_404(workspace, table, run.view_id) if run.view_id else None
    plan = service.plan_export(
        workspace, actor, table, view, excel=run.settings.get("excel", False), raw=run.settings.get("raw", False)
    )
    first = service.export_head(plan)
    path = export_path(run)
    partial = path.with_suffix(".part")
    rows, size = 0, len(first)
    try:
        with open(partial, "wb") as handle:
            handle.write(first)
            for chunk, rows in service.export_body(plan):
                handle.write(chunk)
                size += len(chunk)
                if progress.due(rows):
                    progress.write(rows_out=rows, size_bytes=size)
        # A reader never sees a half-written file under the final name.
        os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)
    return rows, size


def _email_link(run: DataRun) -> None:
    from morket.accounts.models import User
    from morket.mail.service import absolute_url, send_email
    from morket.workspaces.models import Workspace

    user = db.session.get(User, run.created_by_id) if run.created_by_id else None
    if user is None:
        return
    workspace = db.session.get(Workspace, run.workspace_id)
    link = absolute_url("dataops.download_export", slug=workspace.slug, token=link_token(run))
    send_email(
        user.email,
        f"Your export “{run.file_name}” is ready",
        "export_ready",
        link=link,
        file_name=run.file_name,
        rows=run.rows_out,
        workspace_name=workspace.name,
        exports_url=absolute_url("dataops.exports_page", slug=workspace.slug),
        expires_days=LINK_DAYS,
    )


# --- clean-up ---------------------------------------------------------------------------------------


def delete_expired_exports() -> int:
    """Delete the files of background exports whose links have expired; return how many were removed."""
    cutoff = utcnow() - timedelta(days=LINK_DAYS)
    runs = db.session.scalars(
        select(DataRun).where(
            DataRun.kind == "export",
            DataRun.status == "done",
            DataRun.finished_at <= cutoff,
            DataRun.settings["background"].as_boolean().is_(True),
            DataRun.settings["removed"].as_boolean().is_not(True),
        )
    )
    removed = 0
    for run in runs:
        export_path(run).unlink(missing_ok=True)
        run.settings = {**run.settings, "removed": True}
        removed += 1
    db.session.flush()
    _delete_stale_parts()
    return removed


def _delete_stale_parts() -> None:
    """Remove half-written files left by a worker that died more than a job timeout ago."""
    folder = service.data_dir()
    horizon = time.time() - 2 * 3600
    for part in folder.glob("export-*.part"):
        if part.stat().st_mtime < horizon:
            part.unlink(missing_ok=True)
