"""CSV import and export services: uploads, mapping, runs and streamed exports.

An import's load (typing, the all-or-nothing COPY) is ``dataops/loading.py``; its job, with the
one commit, is ``dataops/tasks.py``.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import sqlalchemy as sa
from flask import current_app
from sqlalchemy import select, update

from morket.core.db import utcnow
from morket.core.errors import Conflict, NotFound, ValidationFailed
from morket.core.jobs import QUEUE_IO, enqueue_after_commit
from morket.core.text import plural
from morket.core.types import Actor, Workspace
from morket.dataops import csvio
from morket.dataops.models import DataRun
from morket.extensions import db
from morket.tables import service as tables
from morket.tables import storage
from morket.tables.models import COLUMN_TYPES, Column, Table, View

UPLOAD_CHUNK = 1024 * 1024
IMPORTABLE_TYPES = tuple(t for t in COLUMN_TYPES if t not in ("formula", "lookup", "enrichment", "ai"))
ON_DUPLICATE = ("skip", "update")
EXPORT_CHUNK = 64 * 1024


# --- files ------------------------------------------------------------------------------------------


def data_dir() -> Path:
    """Return the folder holding uploaded CSV files and error files (created on first use)."""
    path = Path(current_app.config["MORKET"]["DATAOPS_DIR"])
    path.mkdir(parents=True, exist_ok=True)
    return path


def upload_path(run: DataRun) -> Path:
    return data_dir() / f"import-{run.workspace_id}-{run.id}-{run.settings['token']}.csv"


def errors_path(run: DataRun) -> Path:
    return data_dir() / f"import-{run.workspace_id}-{run.id}-{run.settings['token']}.errors.csv"


def _check(workspace: Workspace, run: DataRun) -> None:
    if run.workspace_id != workspace.id:
        raise NotFound("That import does not exist.")


def get_run_or_404(workspace: Workspace, run_id: int, *, kind: str | None = None) -> DataRun:
    """Return the workspace's import or export ``run_id``, or raise NotFound."""
    stmt = select(DataRun).where(DataRun.id == run_id, DataRun.workspace_id == workspace.id)
    if kind is not None:
        stmt = stmt.where(DataRun.kind == kind)
    run = db.session.scalars(stmt).one_or_none()
    if run is None:
        raise NotFound("That import or export does not exist.")
    return run


def list_runs(workspace: Workspace, *, limit: int = 100) -> list[DataRun]:
    """Return the workspace's latest imports and exports, newest first."""
    return list(
        db.session.scalars(
            select(DataRun)
            .where(DataRun.workspace_id == workspace.id)
            .order_by(DataRun.created_at.desc(), DataRun.id.desc())
            .limit(limit)
        )
    )


def run_authors(workspace: Workspace, runs: Sequence[DataRun]) -> dict[int, str]:
    """Return the names of the people who ran ``runs`` (members of ``workspace``), by user id."""
    from morket.accounts.models import User

    ids = {r.created_by_id for r in runs if r.workspace_id == workspace.id and r.created_by_id is not None}
    if not ids:
        return {}
    return {u.id: u.name or u.email for u in db.session.scalars(select(User).where(User.id.in_(ids)))}


# --- upload and preview -----------------------------------------------------------------------------


def upload_import(
    workspace: Workspace, actor: Actor, stream: IO[bytes], file_name: str, *, max_bytes: int | None = None
) -> DataRun:
    """Stream an uploaded CSV to disk (never whole in memory), detect its format, record the run."""
    cap = max_bytes if max_bytes is not None else int(current_app.config["MORKET"]["IMPORT_MAX_BYTES"])
    name = os.path.basename((file_name or "").replace("\\", "/")).strip()[:255] or "upload.csv"
    run = DataRun(
        workspace_id=workspace.id,
        kind="import",
        status="uploaded",
        created_by_id=getattr(actor, "id", None),
        file_name=name.replace("\x00", ""),
        settings={"token": uuid.uuid4().hex},
    )
    db.session.add(run)
    db.session.flush()
    path = upload_path(run)
    size = 0
    try:
        with open(path, "wb") as out:
            while chunk := stream.read(UPLOAD_CHUNK):
                size += len(chunk)
                if size > cap:
                    raise ValidationFailed(
                        f"The file is larger than the import limit of {cap / 1024 / 1024:,.0f} MB.",
                        fields={"file": ["too large"]},
                    )
                out.write(chunk)
        sniffed = csvio.sniff(path)
    except csvio.CsvError as exc:
        path.unlink(missing_ok=True)
        raise ValidationFailed(str(exc), fields={"file": [str(exc)]}) from exc
    except ValidationFailed:
        path.unlink(missing_ok=True)
        raise
    run.size_bytes = size
    run.settings = {**run.settings, **sniffed.as_settings(), "header": sniffed.header, "types": sniffed.types}
    db.session.flush()
    return run


def preview_import(workspace: Workspace, run: DataRun) -> csvio.Sniffed:
    """Return the format, header, guessed types and first rows of an uploaded file, in its chosen encoding."""
    _check(workspace, run)
    path = upload_path(run)
    if not path.exists():
        raise NotFound("The uploaded file is gone; upload it again.")
    try:
        return csvio.sniff(path, run.settings.get("encoding"))
    except csvio.CsvError as exc:
        raise ValidationFailed(str(exc)) from exc


def change_import_encoding(workspace: Workspace, actor: Actor, run: DataRun, encoding: str) -> csvio.Sniffed:
    """Read an uploaded file again in ``encoding``, the user's choice over the detected one."""
    _check(workspace, run)
    if run.kind != "import" or run.status != "uploaded":
        raise Conflict("The encoding can only be changed before the import starts.")
    if encoding not in csvio.ENCODING_LABELS:
        raise ValidationFailed("Choose one of the listed encodings.", fields={"encoding": ["unknown encoding"]})
    path = upload_path(run)
    if not path.exists():
        raise NotFound("The uploaded file is gone; upload it again.")
    try:
        sniffed = csvio.sniff(path, encoding)
    except csvio.CsvError as exc:
        raise ValidationFailed(str(exc), fields={"encoding": [str(exc)]}) from exc
    run.settings = {**run.settings, **sniffed.as_settings(), "header": sniffed.header, "types": sniffed.types}
    db.session.flush()
    return sniffed


# --- mapping and start ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Target:
    """Where one CSV column goes: its source index and the table column (filled at load time)."""

    source: int
    column_id: int | None
    name: str
    type: str


def _clean_mapping(
    workspace: Workspace,
    run: DataRun,
    table: Table | None,
    mapping: Sequence[Mapping[str, Any]],
) -> list[dict[str, Any]]:
    header: list[str] = run.settings["header"]
    if not isinstance(mapping, Sequence) or isinstance(mapping, str | bytes):
        raise ValidationFailed("The mapping is a list of CSV columns and their targets.")
    cleaned: list[dict[str, Any]] = []
    used_columns: set[int] = set()
    used_names: set[str] = set()
    existing = {c.id: c for c in table.live_columns} if table is not None else {}
    taken_names = {c.name.casefold() for c in existing.values()}
    for item in mapping:
        if not isinstance(item, Mapping):
            raise ValidationFailed("Each mapping entry is an object.")
        source = item.get("source")
        if isinstance(source, bool) or not isinstance(source, int) or not 0 <= source < len(header):
            raise ValidationFailed("A mapping entry names a CSV column that the file does not have.")
        target = item.get("target", "skip")
        label = header[source]
        if target == "skip":
            continue
        if target == "new":
            column_type = item.get("type") or "text"
            if column_type not in IMPORTABLE_TYPES:
                raise ValidationFailed(f"“{label}”: unknown column type “{column_type}”.", fields={label: ["type"]})
            name = str(item.get("name") or label).strip()[:120] or label
            if name.casefold() in taken_names or name.casefold() in used_names:
                raise ValidationFailed(f"There is already a column named “{name}”.", fields={label: ["name taken"]})
            used_names.add(name.casefold())
            cleaned.append({"source": source, "column_id": None, "name": name, "type": column_type})
            continue
        try:
            column_id = int(target)
        except (TypeError, ValueError):
            raise ValidationFailed(f"“{label}”: choose a new column, an existing column or skip.") from None
        column = existing.get(column_id)
        if column is None:
            raise ValidationFailed(f"“{label}”: that column is not in the table.", fields={label: ["no such column"]})
        if column.type not in IMPORTABLE_TYPES:
            raise ValidationFailed(f"“{label}”: the column “{column.name}” is computed and cannot be imported into.")
        if column_id in used_columns:
            raise ValidationFailed(f"Two CSV columns map to “{column.name}”.", fields={label: ["mapped twice"]})
        used_columns.add(column_id)
        cleaned.append({"source": source, "column_id": column_id, "name": column.name, "type": column.type})
    if not cleaned:
        raise ValidationFailed("Map at least one CSV column to a table column.")
    if table is None and len(cleaned) > storage.MAX_USER_COLUMNS:
        raise ValidationFailed(
            f"The file has {len(cleaned):,} mapped columns; a table holds at most {storage.MAX_USER_COLUMNS}. "
            "Skip the columns you do not need."
        )
    if table is not None and len(table.live_columns) + sum(1 for c in cleaned if c["column_id"] is None) > (
        storage.MAX_USER_COLUMNS
    ):
        raise ValidationFailed(f"A table holds at most {storage.MAX_USER_COLUMNS} columns; skip some new columns.")
    return cleaned


def start_import(
    workspace: Workspace,
    actor: Actor,
    run: DataRun,
    *,
    mapping: Sequence[Mapping[str, Any]],
    table: Table | None = None,
    table_name: str | None = None,
    dedupe: Sequence[int] = (),
    on_duplicate: str = "skip",
    skip_errors: bool = False,
) -> DataRun:
    """Validate the mapping and queue the import job (new table when ``table`` is None)."""
    _check(workspace, run)
    if run.kind != "import" or run.status not in ("uploaded", "needs_review"):
        raise Conflict("This import has already started.")
    if table is not None and table.workspace_id != workspace.id:
        raise NotFound("That table does not exist.")
    if table is None:
        table_name = (table_name or "").strip() or os.path.splitext(run.file_name)[0][:120] or "Imported table"
    cleaned = _clean_mapping(workspace, run, table, mapping)
    if on_duplicate not in ON_DUPLICATE:
        raise ValidationFailed("On a duplicate, choose skip or update.")
    mapped_sources = {m["source"] for m in cleaned}
    keys = []
    for source in dedupe or ():
        if isinstance(source, bool) or not isinstance(source, int) or source not in mapped_sources:
            raise ValidationFailed("The dedupe key must be made of mapped columns.", fields={"dedupe": ["not mapped"]})
        if source not in keys:
            keys.append(source)
    run.table_id = table.id if table is not None else None
    run.settings = {
        **run.settings,
        "mapping": cleaned,
        "table_name": table_name,
        "dedupe": keys,
        "on_duplicate": on_duplicate,
        "skip_errors": bool(skip_errors),
    }
    _queue(run)
    return run


def import_rest(workspace: Workspace, actor: Actor, run: DataRun) -> DataRun:
    """Import the rows that can be read, leaving out the listed error rows."""
    _check(workspace, run)
    if run.status != "needs_review":
        raise Conflict("This import is not waiting for a decision.")
    run.settings = {**run.settings, "skip_errors": True}
    _queue(run)
    return run


def _queue(run: DataRun) -> None:
    run.status = "queued"
    run.cancel_requested = False
    run.message = None
    attempt = int(run.settings.get("attempt", 0)) + 1
    run.settings = {**run.settings, "attempt": attempt}
    db.session.flush()
    enqueue_after_commit("morket.dataops.tasks.run_import", run.id, queue=QUEUE_IO, job_id=f"import-{run.id}-{attempt}")


def cancel_run(workspace: Workspace, actor: Actor, run: DataRun) -> DataRun:
    """Ask a queued or running import to stop; one waiting for a decision is closed at once."""
    _check(workspace, run)
    if run.is_final:
        raise Conflict("This import has already finished.")
    run.cancel_requested = True
    if run.status in ("uploaded", "needs_review", "queued"):
        run.status = "cancelled"
        run.finished_at = utcnow()
        run.message = "Cancelled; the table was not changed."
    db.session.flush()
    return run


# --- the run page ---------------------------------------------------------------------------------


def import_warning(run: DataRun) -> str | None:
    """Name the lines of an import whose number of values differs from the header's."""
    settings = run.settings
    return csvio.ragged_warning(
        len(settings.get("header", [])), settings.get("ragged_lines", []), settings.get("ragged_count", 0)
    )


# --- exports ----------------------------------------------------------------------------------------

_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r", "\n")
_NUMBERISH = r"^[+-]?([0-9]+([.][0-9]*)?|[.][0-9]+)([eE][+-]?[0-9]+)?$"


def _cell_sql(column: Column, expr: sa.ColumnElement, *, raw: bool) -> sa.ColumnElement:
    kind = column.type
    if kind == "checkbox":
        return sa.case((expr.is_(True), "true"), (expr.is_(False), "false"), else_=None)
    if kind == "multi_select":
        text = sa.func.array_to_string(expr, ", ")
    elif kind == "datetime":
        text = sa.func.to_char(sa.func.timezone("UTC", expr), 'YYYY-MM-DD"T"HH24:MI:SS"Z"')
    else:
        text = sa.cast(expr, sa.Text)
    if raw or kind in ("number", "currency", "percent", "date", "datetime"):
        return text
    # OWASP CSV injection: a cell a spreadsheet would run as a formula gets a leading quote,
    # unless it is a plain number such as -5 or +1.5.
    # The first character's code point is one cheap integer test per cell (a substr and an IN
    # list of strings cost three times a plain COPY at 1M rows); the regex runs only for + and -.
    first = sa.func.ascii(text)
    risky = sa.or_(
        first.in_([ord(c) for c in _FORMULA_STARTS if c not in "+-"]),
        sa.and_(first.in_([ord("+"), ord("-")]), text.op("!~")(_NUMBERISH)),
    )
    return sa.case((risky, sa.literal("'") + text), else_=text)


def neutralise_name(name: str) -> str:
    """Neutralise a header cell the way the export SQL neutralises data cells."""
    import re

    if name[:1] in ("=", "+", "-", "@", "\t", "\r", "\n") and not re.fullmatch(_NUMBERISH, name):
        return "'" + name
    return name


@dataclass
class ExportPlan:
    """What an export streams: its COPY statement, parameters, header and file name."""

    sql: str
    params: dict[str, Any]
    header: list[str]
    file_name: str
    excel: bool


def plan_export(
    workspace: Workspace,
    actor: Actor,
    table: Table,
    view: View | None,
    *,
    excel: bool = False,
    raw: bool = False,
) -> ExportPlan:
    """Build the COPY … TO STDOUT of a view (its filters, sort and hidden columns) or of the whole table."""
    if table.workspace_id != workspace.id or (view is not None and view.workspace_id != workspace.id):
        raise NotFound("That table does not exist.")
    hidden = set(view.hidden_column_ids or []) if view is not None else set()
    columns = [c for c in table.live_columns if c.id not in hidden]
    if not columns:
        raise ValidationFailed("This view shows no columns; show at least one to export it.")
    store = storage.storage_for(table)
    rows = store.rows
    cells = [_cell_sql(c, store.columns[c.id], raw=raw).label(c.storage_name) for c in columns]
    if view is not None and view.is_ordered:
        tables.ensure_view_order(workspace, table, view)
        order = storage.order_table(table.id, view.id)
        stmt = sa.select(*cells).select_from(order.join(rows, rows.c.id == order.c.row_id)).order_by(order.c.rank)
    else:
        stmt = sa.select(*cells).order_by(rows.c.pos)
    compiled = stmt.compile(dialect=db.engine.dialect, compile_kwargs={"render_postcompile": True})
    header = [c.name if raw else neutralise_name(c.name) for c in columns]
    safe = "".join(ch if ch.isalnum() or ch in " -_" else "_" for ch in table.name).strip() or "table"
    suffix = f" - {view.name}" if view is not None and view.is_ordered else ""
    safe_suffix = "".join(ch if ch.isalnum() or ch in " -_" else "_" for ch in suffix)
    return ExportPlan(
        sql=f"COPY ({compiled}) TO STDOUT WITH (FORMAT csv)",
        params=dict(compiled.params),
        header=header,
        file_name=f"{safe}{safe_suffix}.csv"[:200],
        excel=excel,
    )


def record_export(workspace: Workspace, actor: Actor, table: Table, view: View | None, plan: ExportPlan) -> DataRun:
    """Record an export as running; ``finish_export`` completes it when the last byte is sent."""
    run = DataRun(
        workspace_id=workspace.id,
        kind="export",
        status="running",
        created_by_id=getattr(actor, "id", None),
        table_id=table.id,
        view_id=view.id if view is not None else None,
        file_name=plan.file_name,
        settings={"excel": plan.excel},
        started_at=utcnow(),
    )
    db.session.add(run)
    db.session.flush()
    return run


def export_head(plan: ExportPlan) -> bytes:
    """Return the first bytes of an export: the BOM for Excel when asked for, then the header row."""
    import io

    head = io.StringIO()
    csvio.write_csv_row(head, plan.header)
    first = head.getvalue().encode("utf-8")
    return b"\xef\xbb\xbf" + first if plan.excel else first


def export_body(plan: ExportPlan) -> Iterator[tuple[bytes, int]]:
    """Yield the rows of ``plan`` from COPY in chunks of about EXPORT_CHUNK bytes, with the rows so far.

    COPY ends every row with a bare LF; RFC 4180, and spreadsheets that check, want CRLF on every
    line, as the header has. COPY hands over exactly one row per read, so a row's last byte is its
    LF (a line break inside a quoted cell is the cell's own and stays as it is).
    """
    rows = 0
    buffer = bytearray()
    raw = db.session.connection().connection.driver_connection
    with raw.cursor() as cursor, cursor.copy(plan.sql, plan.params) as copy:
        for data in copy:
            rows += 1
            buffer += data[:-1]
            buffer += b"\r\n"
            if len(buffer) >= EXPORT_CHUNK:
                yield bytes(buffer), rows
                buffer.clear()
    if buffer:
        yield bytes(buffer), rows


def stream_export(plan: ExportPlan, on_done: Callable[[int, int], None] | None = None) -> Iterator[bytes]:
    """Yield the CSV bytes of ``plan`` from COPY in chunks; call ``on_done(rows, bytes)`` at the end."""
    first = export_head(plan)
    yield first
    total, rows = len(first), 0
    for chunk, rows_so_far in export_body(plan):
        total, rows = total + len(chunk), rows_so_far
        yield chunk
    if on_done is not None:
        on_done(rows, total)


def finish_export(run_id: int, rows: int, size: int) -> None:
    """Mark an export done with its row count and size."""
    db.session.execute(
        update(DataRun)
        .where(DataRun.id == run_id)
        .values(
            status="done",
            rows_out=rows,
            size_bytes=size,
            finished_at=utcnow(),
            message=f"{plural(rows, 'row')} exported.",
        )
    )


def read_errors(run: DataRun) -> Iterator[bytes]:
    """Yield the error file of an import in chunks."""
    path = errors_path(run) if run.settings.get("token") else None
    if path is None or not path.exists():
        raise NotFound("This import has no error file.")

    def chunks() -> Iterator[bytes]:
        with open(path, "rb") as handle:
            while chunk := handle.read(EXPORT_CHUNK):
                yield chunk

    return chunks()
