"""The CSV import's load: typing every cell for COPY, the all-or-nothing load and its outcome.

The rows load inside the job's one transaction with PostgreSQL COPY (``dataops.tasks.run_import``
commits). A load that must leave the table as it was (cancelled, a bad file or mapping, error
rows waiting for the user's decision) raises ``ImportStopped`` and the job rolls it back, new
table and columns included (PostgreSQL DDL is transactional). Progress is written in separate
short transactions on another connection so that the page can show it while the load is still
uncommitted.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable, Iterator, Sequence
from datetime import date, datetime
from typing import IO, Any

import psycopg
import sqlalchemy as sa
from sqlalchemy import select, update

from morket.core.db import utcnow
from morket.core.errors import NotFound, ValidationFailed
from morket.core.text import plural
from morket.core.types import Actor, Workspace
from morket.dataops import csvio, fastload
from morket.dataops.models import DataRun
from morket.dataops.normalise import normalised_sql
from morket.dataops.service import errors_path, upload_path
from morket.extensions import db
from morket.tables import service as tables
from morket.tables import storage
from morket.tables.cells import LONG_TEXT_MAX, TEXT_MAX, CellError, parse_cell
from morket.tables.models import Column, Table

PROGRESS_EVERY_ROWS = 5000
PROGRESS_EVERY_SECONDS = 0.5
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


class Progress:
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
    progress = Progress(run.id)
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
    workspace: Workspace, actor: Actor | None, run: DataRun, progress: Progress, report: dict[str, Any]
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
    # The COPY runs on the driver's cursor: a value the database refuses aborts the transaction
    # under SQLAlchemy's feet. Rolling back to this savepoint leaves the session usable.
    savepoint = db.session.begin_nested()
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
    except psycopg.errors.DataError as exc:
        savepoint.rollback()
        refused = exc.diag.message_primary or str(exc)
        raise ImportStopped(
            {
                "status": "failed",
                "message": f"The database refused a value of the file ({refused}). Nothing was imported.",
            }
        ) from exc
    finally:
        if errors_out is not None:
            errors_out.close()
    savepoint.commit()
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
        tables.refresh_lookups(workspace, table)
        tables.announce_change(table.id, "import")  # open grids fetch again once the import commits
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
