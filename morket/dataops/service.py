"""CSV import and export services: uploads, mapping, the all-or-nothing COPY load, streamed exports.

An import's rows load inside one transaction with PostgreSQL COPY; a failure or a cancel rolls
it back, new table and columns included (PostgreSQL DDL is transactional), so the target table
is exactly as it was. Progress is written in separate short transactions on another connection
so that the page can show it while the load is still uncommitted.
"""

from __future__ import annotations

import json
import os
import re
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
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
from morket.dataops import csvio, fastload
from morket.dataops.models import DataRun
from morket.dataops.normalise import normalised_sql
from morket.extensions import db
from morket.tables import service as tables
from morket.tables import storage
from morket.tables.cells import LONG_TEXT_MAX, TEXT_MAX, CellError, parse_cell
from morket.tables.models import COLUMN_TYPES, Column, Table, View

PROGRESS_EVERY_ROWS = 5000
PROGRESS_EVERY_SECONDS = 0.5
UPLOAD_CHUNK = 1024 * 1024
IMPORTABLE_TYPES = tuple(t for t in COLUMN_TYPES if t not in ("formula", "enrichment", "ai"))
ON_DUPLICATE = ("skip", "update")
EXPORT_CHUNK = 64 * 1024
# Error rows listed on the review page; the error file has them all.
ERROR_SAMPLE = 20
# A cell of the error file longer than this is cut, with a note of how much was left out.
ERROR_CELL_CHARS = 1000


class ImportCancelledError(Exception):
    """The user cancelled a running import."""


class ImportStopped(Exception):
    """The load ends leaving the table as it was: the job rolls back and records ``outcome``."""

    def __init__(self, outcome: dict[str, Any]) -> None:
        super().__init__(outcome["message"])
        self.outcome = outcome


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


# --- typing -----------------------------------------------------------------------------------------


_COPY_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})
_FAST_NUMBER = re.compile(r"-?[0-9]{1,15}(?:\.[0-9]{1,12})?")
_FAST_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")


def _copy_text(value: str) -> str:
    """Escape a value for COPY's text format (backslash, tab, newline, carriage return)."""
    if "\\" in value or "\t" in value or "\n" in value or "\r" in value:
        return value.translate(_COPY_ESCAPES)
    return value


def _stored_text(column_type: str, value: Any) -> str:
    """Render a value that parse_cell returned as PostgreSQL input text for the column's type."""
    if column_type in ("json", "enrichment"):
        return json.dumps(value)
    if isinstance(value, bool):
        return "t" if value else "f"
    if column_type == "multi_select":
        items = ('"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"' for v in value)
        return "{" + ",".join(items) + "}"
    if isinstance(value, date | datetime):
        return value.isoformat()
    return str(value)


def _converter(column: Column) -> Callable[[str], str]:
    """Return a function from a CSV field to its COPY text (empty for blank); bad values raise CellError."""
    column_type, config = column.type, column.config
    if column_type in ("text", "long_text"):
        limit = TEXT_MAX if column_type == "text" else LONG_TEXT_MAX

        def text(raw: str) -> str:
            if not raw or raw.isspace():
                return ""
            if "\x00" in raw:
                raise CellError("Text cannot contain a NUL character.")
            if len(raw) > limit:
                raise CellError(f"Text is longer than {limit:,} characters.")
            return _copy_text(raw)

        return text

    def typed(raw: str) -> str:
        value = parse_cell(column_type, config, raw)
        return "" if value is None else _copy_text(_stored_text(column_type, value))

    if column_type == "number":

        def number(raw: str) -> str:
            # Plain numbers within the column's limits go to PostgreSQL as they are; the rest get
            # the full parser (thousands separators, exponents, limits and its messages).
            cleaned = raw.strip()
            return cleaned if _FAST_NUMBER.fullmatch(cleaned) else typed(raw)

        return number
    if column_type == "date":

        def iso_date(raw: str) -> str:
            cleaned = raw.strip()
            if _FAST_DATE.fullmatch(cleaned):
                try:
                    date.fromisoformat(cleaned)
                except ValueError:
                    return typed(raw)
                return cleaned
            return typed(raw)

        return iso_date
    return typed


# --- the load ---------------------------------------------------------------------------------------


class _Progress:
    """Write a run's progress and read its cancel flag in short transactions of their own."""

    def __init__(self, run_id: int) -> None:
        self.run_id = run_id
        self.last = 0.0

    def write(self, **values: Any) -> bool:
        """Record ``values``; return whether the user asked to cancel."""
        self.last = time.monotonic()
        with db.engine.begin() as conn:
            flag = conn.execute(
                update(DataRun).where(DataRun.id == self.run_id).values(**values).returning(DataRun.cancel_requested)
            ).scalar_one_or_none()
        return bool(flag)

    def due(self, rows: int) -> bool:
        return rows % PROGRESS_EVERY_ROWS == 0 or time.monotonic() - self.last > PROGRESS_EVERY_SECONDS


def dedupe_key_sql(alias: str, columns: Sequence[Column]) -> str:
    """Return the SQL of a row's normalised dedupe key (NULL when every key cell is blank)."""
    parts = ", ".join(normalised_sql(f"{alias}.{c.storage_name}", c.type) for c in columns)
    return f"NULLIF(concat_ws(chr(31), {parts}), '')"


def _prepare_target(workspace: Workspace, actor: Actor | None, run: DataRun) -> tuple[Table, list[tuple[int, Column]]]:
    settings = run.settings
    if run.table_id is None:
        table = tables.create_table(workspace, actor, settings["table_name"])
    else:
        table = tables.get_table_or_404(workspace, run.table_id)
    pairs: list[tuple[int, Column]] = []
    by_id = {c.id: c for c in table.live_columns}
    for item in settings["mapping"]:
        if item["column_id"] is None:
            column = tables.add_column(workspace, actor, table, item["name"], item["type"])
        else:
            column = by_id.get(item["column_id"])
            if column is None:
                raise ValidationFailed(f"The column “{item['name']}” was deleted; map the file again.")
        pairs.append((item["source"], column))
    return table, pairs


def import_report() -> dict[str, Any]:
    """Return an empty report of a load: the first error rows and the lines of the wrong width."""
    return {"error_sample": [], "ragged_lines": [], "ragged_count": 0}


def load_import(run: DataRun, started: datetime, report: dict[str, Any]) -> dict[str, Any]:
    """Load a queued import's file into its table (flushed, not committed); return the outcome.

    Progress goes out in short transactions of its own. Raises ImportStopped, with the outcome to
    record, when the table must stay as it was: the user cancelled, the file or the mapping
    failed, or rows with errors wait for the user's decision.
    """
    from morket.accounts.models import User
    from morket.workspaces.models import Workspace

    workspace = db.session.get(Workspace, run.workspace_id)
    actor = db.session.get(User, run.created_by_id) if run.created_by_id else None
    progress = _Progress(run.id)
    progress.write(status="running", started_at=started, bytes_done=0, rows_in=0, error_count=0)
    try:
        return _load(workspace, actor, run, progress, report)
    except ImportCancelledError:
        raise ImportStopped({"status": "cancelled", "message": "Cancelled; the table was not changed."}) from None
    except (csvio.CsvError, ValidationFailed, NotFound) as exc:
        message = exc.message if isinstance(exc, ValidationFailed | NotFound) else str(exc)
        raise ImportStopped({"status": "failed", "message": f"{message} Nothing was imported."}) from exc


def record_import_outcome(run_id: int, outcome: dict[str, Any], report: dict[str, Any], started: datetime) -> DataRun:
    """Write a load's outcome and report on its run (flushed); ``finished_at`` unless it awaits a decision."""
    run = db.session.get(DataRun, run_id, populate_existing=True)
    for key, value in outcome.items():
        setattr(run, key, value)
    run.settings = {**run.settings, **report}
    run.started_at = started
    run.finished_at = utcnow() if outcome["status"] != "needs_review" else None
    db.session.flush()
    return run


def error_cell(value: str) -> str:
    """Return a cell as the error file shows it: NUL as a visible ␀, a long value cut with a note."""
    if "\x00" in value:
        value = value.replace("\x00", "\u2400")
    if len(value) > ERROR_CELL_CHARS:
        left_out = len(value) - ERROR_CELL_CHARS
        value = f"{value[:ERROR_CELL_CHARS]}… [cut: {plural(left_out, 'more character')} not shown]"
    return value


def import_warning(run: DataRun) -> str | None:
    """Name the lines of an import whose number of values differs from the header's."""
    settings = run.settings
    return csvio.ragged_warning(
        len(settings.get("header", [])), settings.get("ragged_lines", []), settings.get("ragged_count", 0)
    )


Converters = list[tuple[int, Column, Callable[[str], str]]]


def _type_batch(
    rows: list[list[str]], width: int, pick: Callable[[list[str]], Sequence[str]], converters: Converters
) -> tuple[list[int], list[Sequence[str]], dict[int, str]]:
    """Type a batch of records column by column.

    Return the batch positions of the good records, their COPY text by column, and the problem of
    each bad record (its first bad cell in mapping order) by batch position.
    """
    problems: dict[int, str] = {}
    if set(map(len, rows)) == {width}:
        kept = list(range(len(rows)))
        columns: list[Sequence[str]] = list(zip(*map(pick, rows), strict=True))
    else:
        problems = {i: f"Expected {width} values, found {len(f)}." for i, f in enumerate(rows) if len(f) != width}
        kept = [i for i in range(len(rows)) if i not in problems]
        if not kept:
            return [], [], problems
        columns = list(zip(*(pick(rows[i]) for i in kept), strict=True))
    for k, (_, column, convert) in enumerate(converters):
        cells = columns[k]
        if fastload.plain_cells(column.type, cells):
            continue
        typed = list(cells)
        for j in fastload.irregular_cells(column.type, cells):
            try:
                typed[j] = convert(cells[j])
            except CellError as exc:
                problems.setdefault(kept[j], f"{column.name}: {exc}")
        columns[k] = typed
    if problems:
        good = [i not in problems for i in kept]
        kept = [i for i, ok in zip(kept, good, strict=True) if ok]
        columns = [[cell for cell, ok in zip(cells, good, strict=True) if ok] for cells in columns]
    return kept, columns, problems


def _load(
    workspace: Workspace, actor: Actor | None, run: DataRun, progress: _Progress, report: dict[str, Any]
) -> dict[str, Any]:
    """Load the file; fill ``report`` with the first error rows and the lines of the wrong width."""
    settings = run.settings
    table, pairs = _prepare_target(workspace, actor, run)
    run_table_id = table.id
    converters = [(source, column, _converter(column)) for source, column in pairs]
    pick = fastload.picker([source for source, _ in pairs])
    width = len(settings["header"])
    key_columns = [column for source, column in pairs if source in settings.get("dedupe", [])]
    db.session.execute(select(Table.id).where(Table.id == table.id).with_for_update())
    _, last = storage.sequence_bounds(table.storage_name, "pos")
    start = 0 if last is None else last + 1
    names = ", ".join(column.storage_name for _, column in pairs)
    raw = db.session.connection().connection.driver_connection
    if key_columns:
        staging = f"import_staging_{run.id}"
        columns_sql = ", ".join(f"{c.storage_name} {storage.sql_type(c.type)}" for _, c in pairs)
        db.session.execute(sa.text(f"CREATE TEMP TABLE {staging} (line bigint, {columns_sql}) ON COMMIT DROP"))
        copy_sql = f"COPY {staging} (line, {names}) FROM STDIN WITH {fastload.COPY_OPTIONS}"
    else:
        copy_sql = f"COPY ut.{table.storage_name} (pos, {names}) FROM STDIN WITH {fastload.COPY_OPTIONS}"
    reader = csvio.RecordReader(upload_path(run), settings["encoding"], settings["delimiter"], settings["has_header"])
    error_file = errors_path(run)
    error_file.unlink(missing_ok=True)
    errors_out: IO[str] | None = None
    rows_in = good = bad = 0
    try:
        with fastload.collector_paused(), raw.cursor() as cursor, cursor.copy(copy_sql) as copy:
            for lines, rows in reader.batches(fastload.BATCH_ROWS):
                rows_in += len(rows)
                kept, columns, problems = _type_batch(rows, width, pick, converters)
                if kept:
                    if key_columns:
                        keys: Iterator[str] = map(str, map(lines.__getitem__, kept))
                    else:
                        keys = map(str, range(start + good, start + good + len(kept)))
                    copy.write("\n".join(map("\t".join, zip(keys, *columns, strict=True))) + "\n")
                    good += len(kept)
                if problems:
                    bad += len(problems)
                    if errors_out is None:
                        errors_out = open(error_file, "w", encoding="utf-8", newline="")  # noqa: SIM115
                        csvio.write_csv_row(errors_out, ["line", "error", *settings["header"]])
                    for i in sorted(problems):
                        _report_problem(report, lines[i], problems[i], len(rows[i]) != width)
                        csvio.write_csv_row(errors_out, [lines[i], problems[i], *map(error_cell, rows[i])])
                if progress.due(rows_in) and progress.write(
                    rows_in=rows_in, error_count=bad, bytes_done=reader.bytes_read
                ):
                    raise ImportCancelledError()
    finally:
        if errors_out is not None:
            errors_out.close()
    if progress.write(rows_in=rows_in, error_count=bad, bytes_done=run.size_bytes):
        raise ImportCancelledError()
    if rows_in == 0:
        raise csvio.CsvError("The file has a header but no rows of data.")
    if bad and not settings.get("skip_errors"):
        if good:
            message = (
                f"{bad:,} of {plural(rows_in, 'row')} cannot be imported. Download the error file, "
                f"then import the other {plural(good, 'row')} or cancel."
            )
        else:
            none = "The file's only row cannot" if rows_in == 1 else f"None of the {rows_in:,} rows can"
            message = f"{none} be imported. Download the error file to see why, then fix the file and upload it again."
        raise ImportStopped(
            {
                "status": "needs_review",
                "rows_in": rows_in,
                "error_count": bad,
                "rows_out": 0,
                "table_id": run.table_id,
                "message": message,
            }
        )
    updated = 0
    inserted = good
    if key_columns:
        inserted, updated = _merge(table, pairs, key_columns, staging, start, settings.get("on_duplicate", "skip"))
    table.row_count += inserted
    if inserted or updated:
        tables.mark_views_stale(workspace, table, None)
    db.session.flush()
    skipped = good - inserted - updated
    parts = [f"{plural(inserted, 'row')} added"]
    if updated:
        parts.append(f"{updated:,} updated")
    if skipped:
        parts.append(f"{plural(skipped, 'duplicate')} skipped")
    if bad:
        parts.append(f"{plural(bad, 'row')} with errors left out")
    return {
        "status": "done",
        "table_id": run_table_id,
        "rows_in": rows_in,
        "rows_out": inserted,
        "rows_updated": updated,
        "rows_skipped": skipped,
        "error_count": bad,
        "message": ", ".join(parts) + ".",
    }


def _report_problem(report: dict[str, Any], line: int, message: str, ragged: bool) -> None:
    if len(report["error_sample"]) < ERROR_SAMPLE:
        report["error_sample"].append([line, error_cell(message)])  # JSONB refuses NUL
    if ragged:
        report["ragged_count"] += 1
        if len(report["ragged_lines"]) < csvio.RAGGED_SHOWN:
            report["ragged_lines"].append(line)


def _merge(
    table: Table,
    pairs: list[tuple[int, Column]],
    key_columns: list[Column],
    staging: str,
    start: int,
    on_duplicate: str,
) -> tuple[int, int]:
    """Fold the staged rows into the table by their dedupe key; return (inserted, updated)."""
    rows = f"ut.{table.storage_name}"
    staged_key = dedupe_key_sql("s", key_columns)
    table_key = dedupe_key_sql("t", key_columns)
    db.session.execute(sa.text(f"ALTER TABLE {staging} ADD COLUMN k text"))
    db.session.execute(sa.text(f"UPDATE {staging} AS s SET k = {staged_key}"))  # noqa: S608 - generated names
    # The first row of the file wins among its own duplicates.
    db.session.execute(
        sa.text(
            f"DELETE FROM {staging} AS s USING {staging} AS f "  # noqa: S608 - generated names
            "WHERE s.k IS NOT NULL AND s.k = f.k AND f.line < s.line"
        )
    )
    db.session.execute(sa.text(f"CREATE INDEX ON {staging} (k)"))
    db.session.execute(sa.text(f"ANALYZE {staging}"))
    updated = 0
    names = [c.storage_name for _, c in pairs]
    if on_duplicate == "update":
        others = [c.storage_name for _, c in pairs if c not in key_columns] or names
        sets = ", ".join(f"{n} = COALESCE(s.{n}, t.{n})" for n in others)
        updated = db.session.execute(
            sa.text(f"UPDATE {rows} AS t SET {sets} FROM {staging} AS s WHERE s.k IS NOT NULL AND {table_key} = s.k")  # noqa: S608
        ).rowcount
    cols = ", ".join(names)
    inserted = db.session.execute(
        sa.text(
            f"INSERT INTO {rows} (pos, {cols}) "  # noqa: S608 - generated names
            f"SELECT :start + row_number() OVER (ORDER BY s.line) - 1, {', '.join('s.' + n for n in names)} "
            f"FROM {staging} AS s WHERE s.k IS NULL OR NOT EXISTS "
            f"(SELECT 1 FROM {rows} AS t WHERE {table_key} = s.k)"
        ),
        {"start": start},
    ).rowcount
    return inserted, updated


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
