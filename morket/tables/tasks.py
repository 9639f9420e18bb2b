"""Column jobs: convert a column to another type, recompute a formula column over every row.

Each job takes the id of its ``ColumnJob`` row, reloads it scoped to its workspace, and writes
its data in the worker's one transaction (committed by the runner at the end), so readers see
the old cells until the new ones are complete. Progress goes to the job row on a connection of
its own, in short transactions, so that the page's progress bar moves while the job runs. A job
that finds its row already finished does nothing: running it twice is safe.
"""

from __future__ import annotations

import json
import logging
from typing import Any

import sqlalchemy as sa
from sqlalchemy import select
from sqlalchemy.exc import OperationalError

from morket.extensions import db
from morket.tables import column_service, formula_rows, lookups, storage
from morket.tables.access import mark_views_stale
from morket.tables.cells import CellError, parse_cell
from morket.tables.column_configs import MAX_SELECT_OPTIONS
from morket.tables.column_service import ColumnJob
from morket.tables.models import Table, View
from morket.tables.undo import push_undo
from morket.workspaces.models import Workspace

log = logging.getLogger("morket.tables.jobs")


def _report(job_id: int, **values: Any) -> None:
    """Write progress on a separate connection so the page sees it before the job commits.

    The job's own session must not write its job row until the end (``finish_job``): a row lock
    taken there would make this connection wait for a commit that waits for it.
    """
    try:
        with db.engine.begin() as connection:
            connection.execute(sa.text("SET LOCAL lock_timeout = '2s'"))
            connection.execute(sa.update(ColumnJob).where(ColumnJob.id == job_id).values(**values))
    except OperationalError:
        # Progress is a courtesy to the page; the job's result is written with its data at the end.
        log.warning("column job progress not written", extra={"data": {"job_id": job_id}})


def _load(job_id: int) -> tuple[ColumnJob, Workspace, Table] | None:
    job = db.session.get(ColumnJob, job_id)
    if job is None or job.finished:
        return None
    workspace = db.session.get(Workspace, job.workspace_id)
    table = db.session.scalars(
        select(Table).where(Table.id == job.table_id, Table.workspace_id == job.workspace_id)
    ).one_or_none()
    if workspace is None or table is None:
        return None
    return job, workspace, table


def _actor(job: ColumnJob) -> Any:
    from morket.accounts.models import User

    return db.session.get(User, job.created_by_id) if job.created_by_id else None


def _failed(job_id: int, exc: BaseException) -> None:
    """Record a job that raised: its data was rolled back, so nothing changed."""
    db.session.rollback()
    log.exception("column job failed", extra={"data": {"job_id": job_id}})
    _report(
        job_id,
        state="failed",
        message=f"The job stopped ({type(exc).__name__}); nothing was changed. Try again.",
        finished_at=sa.func.now(),
    )


def recompute_formula(job_id: int) -> None:
    """Recompute every formula cell of the job's table, batch by batch, reporting progress."""
    try:
        _recompute_formula(job_id)
    except Exception as exc:
        _failed(job_id, exc)
        raise


def retype_column(job_id: int) -> None:
    """Convert the job's column to its new type; cells that do not convert keep their original value."""
    try:
        _retype_column(job_id)
    except Exception as exc:
        _failed(job_id, exc)
        raise


def fill_lookup(job_id: int) -> None:
    """Fill every cell of the job's lookup column (its indexes first) in one transaction."""
    try:
        _fill_lookup(job_id)
    except Exception as exc:
        _failed(job_id, exc)
        raise


def _fill_lookup(job_id: int) -> None:
    loaded = _load(job_id)
    if loaded is None:
        return
    job, workspace, table = loaded
    column = next((c for c in table.live_columns if c.id == job.column_id and c.type == "lookup"), None)
    if column is None:
        column_service.finish_job(job, "failed", "The lookup column was deleted before it was filled.")
        return
    _report(job.id, state="running", total=table.row_count)
    written = lookups.fill_column(workspace, column)
    job.done = job.total = table.row_count
    job.failed_count = 0
    error = (column.config or {}).get("error")
    column_service.finish_job(job, "failed" if error else "done", error)
    log.info("lookup filled", extra={"data": {"job_id": job_id, "cells": written}})


def _recompute_formula(job_id: int) -> None:
    loaded = _load(job_id)
    if loaded is None:
        return
    job, workspace, table = loaded
    rows = storage.storage_for(table).rows
    low, high = db.session.execute(select(sa.func.min(rows.c.id), sa.func.max(rows.c.id))).one()
    _report(job.id, state="running", total=table.row_count)
    written = 0
    if low is not None:
        lo = low - 1
        while lo < high:
            hi = lo + column_service.FORMULA_BATCH_ROWS
            written += formula_rows.recompute_formulas(workspace, table, lo=lo, hi=hi)
            lo = hi
            _report(job.id, done=written)
    errors = db.session.execute(
        select(sa.func.count()).select_from(rows).where(rows.c.cell_state.has_key(str(job.column_id)))
    ).scalar_one()
    job.failed_count = errors
    job.sample = _error_sample(table, job.column_id)
    job.total = written
    column_service.finish_job(job, "done")


def _error_sample(table: Table, column_id: int) -> list[dict[str, Any]]:
    rows = storage.storage_for(table).rows
    key = str(column_id)
    found = db.session.execute(
        select(column_service.job_row_numbers(table), rows.c.cell_state[key])
        .where(rows.c.cell_state.has_key(key))
        .order_by(rows.c.pos)
        .limit(column_service.SAMPLE_SIZE)
    ).all()
    return [
        {"row": int(number), "value": state.get("original"), "error": state.get("message")} for number, state in found
    ]


_FROM_JSON = {
    "numeric": "CAST(e.j->>'v' AS numeric)",
    "date": "CAST(e.j->>'v' AS date)",
    "timestamptz": "CAST(e.j->>'v' AS timestamptz)",
    "boolean": "CAST(e.j->>'v' AS boolean)",
    "text[]": "CASE WHEN jsonb_typeof(e.j->'v') = 'array' THEN ARRAY(SELECT jsonb_array_elements_text(e.j->'v')) END",
    "jsonb": "NULLIF(e.j->'v', 'null'::jsonb)",
    "text": "e.j->>'v'",
}


def _retype_column(job_id: int) -> None:
    loaded = _load(job_id)
    if loaded is None:
        return
    job, workspace, table = loaded
    column = next((c for c in table.live_columns if c.id == job.column_id), None)
    if column is None:
        column_service.finish_job(job, "failed", "The column was deleted before it could be converted.")
        return
    params = job.params
    to_type, to_config = params["to_type"], dict(params["to_config"])
    from_type = column.type
    store = storage.storage_for(table)
    rows, source = store.rows, store.columns[column.id]
    key = str(column.id)
    if params.get("derive_options"):
        to_config["options"] = _derive_options(rows, source, from_type, to_type)
    _report(job.id, state="running", total=table.row_count)
    physical = f"{storage.USER_SCHEMA}.{storage.rows_name(table.id)}"
    target = column_service.next_column_name(column)
    write = sa.text(
        f"UPDATE {physical} AS t SET {target} = {_FROM_JSON[storage.sql_type(to_type)]}, "  # noqa: S608 - generated names
        "cell_state = CASE WHEN e.j->'s' IS NOT NULL "
        "  THEN coalesce(t.cell_state, '{}'::jsonb) || jsonb_build_object(CAST(:key AS text), e.j->'s') "
        "  WHEN t.cell_state->CAST(:key AS text) ? 'original' "
        "  THEN NULLIF(t.cell_state - CAST(:key AS text), '{}'::jsonb) "
        "  ELSE t.cell_state END "
        "FROM jsonb_array_elements(CAST(:payload AS jsonb)) AS e(j) WHERE t.id = CAST(e.j->>'id' AS bigint)"
    )
    numbers = column_service.job_row_numbers(table)
    last, done, failed, sample = 0, 0, 0, []
    while True:
        batch = db.session.execute(
            select(rows.c.id, numbers, source, rows.c.cell_state[key])
            .where(rows.c.id > last)
            .order_by(rows.c.id)
            .limit(column_service.RETYPE_BATCH_ROWS)
        ).all()
        if not batch:
            break
        payload = []
        for row_id, number, value, state in batch:
            original = state.get("original") if isinstance(state, dict) and value is None else None
            raw = original if original is not None else column_service.raw_of(from_type, value)
            item: dict[str, Any] = {"id": row_id, "v": None}
            try:
                item["v"] = column_service.json_value(parse_cell(to_type, to_config, raw))
            except CellError as exc:
                failed += 1
                message = f"Could not convert to {to_type.replace('_', ' ')}: {exc}"
                item["s"] = {"status": "error", "message": message, "original": raw, "original_type": from_type}
                if len(sample) < column_service.SAMPLE_SIZE:
                    sample.append({"row": int(number), "value": raw, "error": str(exc)})
            payload.append(item)
        db.session.execute(write, {"payload": json.dumps(payload, default=str), "key": key})
        last = batch[-1][0]
        done += len(batch)
        _report(job.id, done=done, failed_count=failed)
    db.session.execute(sa.text(f"ALTER TABLE {physical} DROP COLUMN {column.storage_name}"))
    db.session.execute(sa.text(f"ALTER TABLE {physical} RENAME COLUMN {target} TO {column.storage_name}"))
    from_config = column.config
    column.type, column.config = to_type, to_config
    table.version += 1
    column_service.drop_column_from_views(workspace, table, column)
    db.session.flush()
    lookups.sources_changed(workspace, table)
    if any(c.type == "formula" for c in table.live_columns):
        formula_rows.recompute_formulas(workspace, table, lo=0, hi=2**62)
    actor = _actor(job)
    if params.get("record", True) and actor is not None:
        push_undo(
            workspace,
            actor,
            table,
            "column.retype",
            {"column_id": column.id, "type": to_type, "config": to_config, "expect": from_type},
            {"column_id": column.id, "type": from_type, "config": from_config, "expect": to_type},
        )
    job.done, job.failed_count, job.sample = done, failed, sample
    job.total = done
    column_service.finish_job(job, "done")
    mark_views_stale(workspace, table, {column.id})


def _derive_options(rows: sa.Table, source: Any, from_type: str, to_type: str) -> list[str]:
    """Return the distinct values of the column as select options (Airtable does the same)."""
    value = sa.cast(source, sa.Text) if from_type != "multi_select" else sa.func.unnest(source)
    values = db.session.execute(select(value).where(source.is_not(None)).distinct().limit(2000)).scalars().all()
    options: list[str] = []
    seen: set[str] = set()
    for raw in values:
        parts = raw.split(",") if to_type == "multi_select" else [raw]
        for part in parts:
            name = part.strip()
            if name and "," not in name and len(name) <= 100 and name.casefold() not in seen:
                seen.add(name.casefold())
                options.append(name)
    return sorted(options)[:MAX_SELECT_OPTIONS]


# --- position keys -----------------------------------------------------------------------------

# Rows one compaction step moves before it commits (a short hold of the table's row lock).
COMPACT_STEP_ROWS = 20_000


def compact_keys(table_id: int, view_id: int) -> int:
    """Close the remembered gaps of a table's positions (``view_id`` 0) or of a view's order; return rows moved.

    Queued by a delete that left more than ``storage.GAP_LIMIT`` gaps. Each step locks the table's
    row (and the view's), moves about ``COMPACT_STEP_ROWS`` rows and commits, so writers wait at most
    one step and readers always see consistent keys. The side with fewer rows to move is chosen once.
    """
    moved, downwards = 0, None
    while True:
        table = db.session.scalars(
            select(Table).where(Table.id == table_id).with_for_update().execution_options(populate_existing=True)
        ).one_or_none()
        view = None
        if table is not None and view_id:
            view = db.session.scalars(
                select(View)
                .where(View.id == view_id, View.table_id == table_id)
                .with_for_update()
                .execution_options(populate_existing=True)
            ).one_or_none()
        if table is None or (view_id and (view is None or view.order_stale or not view.is_ordered)):
            db.session.rollback()
            return moved
        if view is None:
            relation, key, base, gaps = table.storage_name, "pos", table.pos_base, table.pos_gaps
        else:
            relation, key = storage.order_name(table_id, view_id), "rank"
            base, gaps = view.rank_base, view.rank_gaps
            if not storage.order_exists(table_id, view_id):
                db.session.rollback()
                return moved
        if not gaps:
            db.session.rollback()
            return moved
        if downwards is None:
            first, last = storage.sequence_bounds(relation, key)
            downwards = first is None or last - min(gaps) <= max(gaps) - first
        base, gaps, step = storage.compact_step(relation, key, base, gaps, COMPACT_STEP_ROWS, downwards=downwards)
        if view is None:
            table.pos_base, table.pos_gaps = base, gaps
        else:
            view.rank_base, view.rank_gaps = base, gaps
        db.session.commit()
        moved += step


def index_order_rows(table_id: int, view_id: int) -> None:
    """Give a freshly built view order its ``row_id`` index, which deletes find their rows by (the runner commits)."""
    storage.index_order_rows(table_id, view_id)


def build_view_order(table_id: int, view_id: int) -> None:
    """Build a large view's order off the request path and swap it in (``tables.sorting``)."""
    from morket.tables import sorting

    sorting.build_in_background(table_id, view_id)


def index_sort_key(table_id: int, view_id: int) -> None:
    """Index a large view's first sort key once its order is built (``tables.sorting``)."""
    from morket.tables import sorting

    sorting.index_first_key(table_id, view_id)
