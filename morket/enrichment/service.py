"""Enrichment runs as users and integrations see them: estimate, start, cancel, progress, attempts.

Services take the workspace (and actor) explicitly, flush but never commit, and raise the domain
errors of ``morket.core.errors``; the work itself happens in jobs run by the row-run engine
(``morket.runs``, with enrichment's executor in ``executor``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pydantic
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql as pg

from morket.billing import service as billing
from morket.core.audit import record_audit
from morket.core.db import utcnow
from morket.core.errors import Conflict, MorketError, NotFound, ValidationFailed
from morket.core.types import Actor, Workspace
from morket.enrichment.config import FIRST_ROWS, EnrichmentConfig, read_config
from morket.enrichment.executor import EXECUTOR
from morket.enrichment.models import EnrichmentAttempt, EnrichmentRun, EnrichmentRunRow
from morket.extensions import db
from morket.runs import callbacks, jobs
from morket.runs.leases import cancel_open_rows
from morket.runs.models import OPEN_ROW_STATUSES
from morket.tables import filters, storage
from morket.tables.models import Column, Table

MAX_SELECTED_ROWS = 100_000
ATTEMPTS_LIMIT = 500


class ConfirmationRequired(MorketError):
    """The run's estimate is above the confirmation threshold and the caller did not confirm."""

    status = 409
    code = "confirmation_required"

    def __init__(self, estimate: Estimate) -> None:
        super().__init__(
            f"This run may use up to {estimate.max_credits:,} credits for {estimate.rows:,} rows: confirm to start it."
        )
        self.estimate = estimate


@dataclass(frozen=True)
class Estimate:
    """What a run would cover and cost at most: every row delivering a value at its dearest price.

    A row pays only for a value it delivers (the charging rule, ``credits.prices``), so
    ``max_credits`` is an upper bound; ``per_row`` is the dearest price of a value and
    ``min_per_value`` the cheapest (they differ when the steps are priced differently).
    """

    rows: int
    max_credits: int
    needs_confirmation: bool
    skipped: int = 0
    per_row: int = 0
    min_per_value: int = 0


# --- checks and loaders ----------------------------------------------------------------------------


def _check_column(workspace: Workspace, table: Table, column: Column) -> EnrichmentConfig:
    if table.workspace_id != workspace.id or column.workspace_id != workspace.id or column.table_id != table.id:
        raise NotFound("Column not found.")
    if column.deleted_at is not None:
        raise NotFound("Column not found.")
    if column.type != "enrichment":
        raise ValidationFailed(
            "Only enrichment columns can be run.", fields={"column_id": ["not an enrichment column"]}
        )
    try:
        config = read_config(column.config)
    except pydantic.ValidationError as exc:
        raise ValidationFailed(
            "This column's enrichment settings are incomplete; open its settings and save them again.",
            fields={"config": [str(e.get("msg")) for e in exc.errors()[:5]]},
        ) from None
    return config


def get_run_or_404(workspace: Workspace, run_id: int) -> EnrichmentRun:
    """The workspace's run ``run_id``; NotFound for anyone else's (existence does not leak)."""
    run = db.session.scalar(
        sa.select(EnrichmentRun).where(
            EnrichmentRun.id == int(run_id),
            EnrichmentRun.workspace_id == workspace.id,
            EnrichmentRun.kind == EXECUTOR.kind,
        )
    )
    if run is None:
        raise NotFound("Run not found.")
    return run


def list_runs(workspace: Workspace, *, table_id: int | None = None, limit: int = 50) -> list[EnrichmentRun]:
    """The workspace's most recent runs, newest first."""
    stmt = sa.select(EnrichmentRun).where(
        EnrichmentRun.workspace_id == workspace.id, EnrichmentRun.kind == EXECUTOR.kind
    )
    if table_id is not None:
        stmt = stmt.where(EnrichmentRun.table_id == table_id)
    return list(db.session.scalars(stmt.order_by(EnrichmentRun.id.desc()).limit(min(max(limit, 1), 200))))


# --- scope and estimate ----------------------------------------------------------------------------


def _empty_cell(column: sa.Column) -> Any:
    """An enrichment cell with no value yet."""
    value = column["value"].astext
    return sa.or_(column.is_(None), value.is_(None), value == "")


def _scope_filter(store: storage.Storage, column_id: int, scope: str, row_ids: Sequence[int] | None) -> Any:
    rows = store.rows
    cell = store.columns[column_id]
    if scope == "all":
        return sa.true()
    if scope == "empty":
        return _empty_cell(cell)
    if scope == "rest":
        # Every row after the first ones in the grid's order, at any table size: one indexed step to the
        # last of the first rows (no row ids travel), and no row at all when the table has no more.
        first = rows.alias("first_rows")
        last_first = sa.select(first.c.pos).order_by(first.c.pos).offset(FIRST_ROWS - 1).limit(1).scalar_subquery()
        return rows.c.pos > last_first
    ids = sorted({int(r) for r in (row_ids or [])})
    if not ids:
        raise ValidationFailed("Select at least one row.", fields={"row_ids": ["required"]})
    if len(ids) > MAX_SELECTED_ROWS:
        raise ValidationFailed(f"Select at most {MAX_SELECTED_ROWS:,} rows.", fields={"row_ids": ["too many"]})
    chosen = rows.c.id == sa.func.any(sa.cast(sa.literal(ids), pg.ARRAY(sa.BigInteger)))
    if scope == "auto":
        return sa.and_(chosen, _empty_cell(cell))
    return chosen


def _condition(store: storage.Storage, config: EnrichmentConfig) -> Any | None:
    if not config.condition:
        return None
    try:
        return filters.compile_filters(config.condition, store)
    except (KeyError, ValueError, TypeError) as exc:
        raise ValidationFailed(f"The run condition cannot be used: {exc}", fields={"condition": ["invalid"]}) from None


def _own_key_providers(workspace: Workspace) -> set[str]:
    try:
        from morket.credentials.service import list_credentials
    except ImportError:  # pragma: no cover - credentials always ship with enrichment
        return set()
    return {c.provider for c in list_credentials(workspace)}


def value_prices(workspace: Workspace, config: EnrichmentConfig) -> list[int]:
    """Credits one delivered value costs when each step delivers it (its price plus the validation's)."""
    from morket.credits.prices import delivery_price
    from morket.providers import registry

    for key in config.operation_keys:
        try:
            registry.get_operation(key)
        except KeyError:
            raise ValidationFailed(
                f"Unknown provider operation {key!r}.", fields={"config": ["unknown operation"]}
            ) from None
    own = _own_key_providers(workspace)
    validation = config.validation.operation if config.validation is not None else None
    return [delivery_price(step.operation, validation, own=own) for step in config.steps]


def _check_scope(scope: str) -> str:
    if scope not in ("all", "empty", "selected", "auto", "rest"):
        raise ValidationFailed(
            "Choose all rows, empty rows, the selected rows or the rows after the first ones.",
            fields={"scope": ["invalid"]},
        )
    return scope


def estimate_run(
    workspace: Workspace, table: Table, column: Column, *, scope: str, row_ids: Sequence[int] | None = None
) -> Estimate:
    """Count the rows a run would cover and the most it could cost, before starting it."""
    config = _check_column(workspace, table, column)
    store = storage.storage_for(table)
    where = _scope_filter(store, column.id, _check_scope(scope), row_ids)
    condition = _condition(store, config)
    matched = sa.func.count()
    if condition is not None:
        matched = sa.func.count().filter(condition)
    total, rows = db.session.execute(sa.select(sa.func.count(), matched).select_from(store.rows).where(where)).one()
    prices = value_prices(workspace, config)
    per_row = max(prices)
    max_credits = int(rows) * per_row
    threshold = int(jobs.setting("ENRICHMENT_CONFIRM_CREDITS", 500))
    return Estimate(
        rows=int(rows),
        max_credits=max_credits,
        needs_confirmation=max_credits > threshold,
        skipped=int(total) - int(rows),
        per_row=per_row,
        min_per_value=min(prices),
    )


# --- starting, cancelling --------------------------------------------------------------------------


def start_run(
    workspace: Workspace,
    actor: Actor | None,
    table: Table,
    column: Column,
    *,
    scope: str,
    row_ids: Sequence[int] | None = None,
    confirm: bool = False,
) -> EnrichmentRun:
    """Create a run over the chosen rows and queue its jobs (they start after the commit).

    Rows that do not match the column's run condition are recorded as skipped at once. Rows that
    an unfinished run of the same column already covers are left to that run.
    """
    config = _check_column(workspace, table, column)
    scope = _check_scope(scope)
    estimate = estimate_run(workspace, table, column, scope=scope, row_ids=row_ids)
    billing.check_run(workspace.id, estimate.rows)  # the plan's run size; credits owed block every run
    if estimate.needs_confirmation and not confirm:
        raise ConfirmationRequired(estimate)
    if estimate.rows + estimate.skipped == 0:
        raise ValidationFailed(
            "There are no rows to enrich." if scope != "empty" else "Every row of this column already has a value.",
            fields={"scope": ["no rows"]},
        )
    run = EnrichmentRun(
        workspace_id=workspace.id,
        table_id=table.id,
        column_id=column.id,
        scope=scope,
        status="queued",
        config=config.model_dump(mode="json"),
        estimate_credits=estimate.max_credits,
        created_by_id=actor.id if actor is not None else None,
    )
    db.session.add(run)
    db.session.flush()
    pending, skipped = _insert_run_rows(workspace, table, column, config, run, scope, row_ids)
    if pending + skipped == 0:
        raise Conflict("Those rows are already being enriched by another run of this column.")
    run.total = pending + skipped
    run.done = skipped
    run.skipped = skipped
    if pending == 0:
        run.status = "completed"
        run.started_at = run.finished_at = utcnow()
    else:
        jobs.enqueue_jobs(EXECUTOR, run.id)
    record_audit(
        workspace,
        actor,
        "enrichment.run_started",
        f"run:{run.id}",
        table_id=table.id,
        column_id=column.id,
        scope=scope,
        rows=run.total,
        estimate_credits=estimate.max_credits,
    )
    db.session.flush()
    return run


def _insert_run_rows(
    workspace: Workspace,
    table: Table,
    column: Column,
    config: EnrichmentConfig,
    run: EnrichmentRun,
    scope: str,
    row_ids: Sequence[int] | None,
) -> tuple[int, int]:
    store = storage.storage_for(table)
    rows = store.rows
    rr = EnrichmentRunRow.__table__
    runs = EnrichmentRun.__table__
    where = _scope_filter(store, column.id, scope, row_ids)
    condition = _condition(store, config)
    matches = condition if condition is not None else sa.true()
    busy = (
        sa.select(rr.c.row_id)
        .join(runs, runs.c.id == rr.c.run_id)
        .where(
            runs.c.column_id == column.id,
            runs.c.id != run.id,
            rr.c.row_id == rows.c.id,
            rr.c.status.in_(OPEN_ROW_STATUSES),
        )
        .exists()
    )
    is_pending = sa.case((matches, sa.literal("pending")), else_=sa.literal("done"))
    state = sa.case((matches, sa.null()), else_=sa.literal("skipped"))
    source = sa.select(
        sa.literal(workspace.id, sa.BigInteger),
        sa.literal(run.id, sa.BigInteger),
        rows.c.id,
        is_pending,
        state,
        sa.literal(0),
        sa.literal(0),
        sa.func.clock_timestamp(),
    ).where(where, ~busy)
    db.session.execute(
        rr.insert().from_select(
            ["workspace_id", "run_id", "row_id", "status", "state", "step_index", "attempts", "next_attempt_at"], source
        )
    )
    pending, skipped = db.session.execute(
        sa.select(
            sa.func.count().filter(rr.c.status == "pending"),
            sa.func.count().filter(rr.c.status == "done"),
        ).where(rr.c.run_id == run.id)
    ).one()
    # One statement marks every covered cell: queued, or skipped by condition.
    key = str(column.id)
    new_state = sa.func.jsonb_build_object(
        key,
        sa.func.jsonb_build_object(
            "status",
            sa.case((rr.c.status == "pending", sa.literal("queued")), else_=sa.literal("skipped")),
            "run_id",
            run.id,
        ),
    )
    db.session.execute(
        sa.update(rows)
        .where(rr.c.run_id == run.id, rr.c.row_id == rows.c.id)
        .values(cell_state=sa.func.coalesce(rows.c.cell_state, sa.cast(sa.literal("{}"), pg.JSONB)).op("||")(new_state))
    )
    return int(pending), int(skipped)


def cancel_run(workspace: Workspace, actor: Actor | None, run: EnrichmentRun) -> EnrichmentRun:
    """Stop a run: rows not finished yet end as cancelled (a row being called right now is dropped)."""
    if run.workspace_id != workspace.id:
        raise NotFound("Run not found.")
    if run.finished:
        raise Conflict(f"This run is already {run.status}.")
    cancelled = cancel_open_rows(run)
    record_audit(workspace, actor, "enrichment.run_cancelled", f"run:{run.id}", rows=cancelled)
    db.session.flush()
    db.session.refresh(run)
    return run


# --- progress and attempts -------------------------------------------------------------------------


def run_progress(run: EnrichmentRun) -> dict[str, Any]:
    """The numbers a progress bar shows; ``finished`` tells a poller to stop."""
    total = int(run.total or 0)
    done = int(run.done or 0)
    return {
        "id": run.id,
        "status": run.status,
        "finished": run.finished,
        "pause_reason": run.pause_reason,
        "total": total,
        "done": done,
        "remaining": max(total - done, 0),
        "succeeded": int(run.succeeded or 0),
        "no_data": int(run.no_data or 0),
        "failed": int(run.failed or 0),
        "skipped": int(run.skipped or 0),
        "cancelled": int(run.cancelled or 0),
        "credits_used": int(run.credits_used or 0),
        "estimate_credits": int(run.estimate_credits or 0),
        "percent": 100 if total == 0 else min(100, round(done * 100 / total)),
        "started_at": run.started_at.isoformat() if run.started_at else None,
        "finished_at": run.finished_at.isoformat() if run.finished_at else None,
    }


def list_attempts(
    workspace: Workspace,
    run: EnrichmentRun | None = None,
    row_id: int | None = None,
    column_id: int | None = None,
    *,
    limit: int = ATTEMPTS_LIMIT,
) -> list[EnrichmentAttempt]:
    """Provider attempts of the workspace, newest first, narrowed to a run, a row and/or a column."""
    stmt = sa.select(EnrichmentAttempt).where(EnrichmentAttempt.workspace_id == workspace.id)
    if run is not None:
        if run.workspace_id != workspace.id:
            raise NotFound("Run not found.")
        stmt = stmt.where(EnrichmentAttempt.run_id == run.id)
    if row_id is not None:
        stmt = stmt.where(EnrichmentAttempt.row_id == int(row_id))
    if column_id is not None:
        stmt = stmt.where(EnrichmentAttempt.column_id == int(column_id))
    stmt = stmt.order_by(EnrichmentAttempt.id.desc()).limit(min(max(int(limit), 1), ATTEMPTS_LIMIT))
    return list(db.session.scalars(stmt))


# --- auto-run --------------------------------------------------------------------------------------


def on_rows_changed(table: Table, row_ids: Sequence[int]) -> list[EnrichmentRun]:
    """Start auto-runs of the table's auto-run columns over the changed rows whose cell is empty.

    Cheap when no column auto-runs: it only looks at the table's columns already in memory.
    """
    columns = [c for c in table.live_columns if c.type == "enrichment" and (c.config or {}).get("auto_run")]
    if not columns or not row_ids:
        return []
    from morket.workspaces.models import Workspace as WorkspaceRow

    workspace = db.session.get(WorkspaceRow, table.workspace_id)
    started = []
    for column in columns:
        try:
            started.append(start_run(workspace, None, table, column, scope="auto", row_ids=row_ids, confirm=True))
        except (ValidationFailed, Conflict):
            continue  # nothing to do for these rows, or a broken configuration the column page shows
    return started


# --- asynchronous providers' callbacks -------------------------------------------------------------


def find_callback_row(provider: str, callback_id: str) -> EnrichmentRunRow | None:
    """The run row an answer from ``provider`` with ``callback_id`` is for (for signature checks), or None."""
    return callbacks.find_callback_row(provider, callback_id)


def complete_callback(provider: str, callback_id: str, payload: Mapping[str, Any]) -> EnrichmentRunRow | None:
    """File an asynchronous provider's answer for the row waiting on ``callback_id``; None if none waits.

    The attempt is written now; a worker continues the waterfall from the answer (validation,
    next steps, output cells) and charges the value if the row delivers it
    (``executor.delivery_charge``). The caller verifies the signature first and commits.
    """
    return callbacks.complete_callback(provider, callback_id, payload)
