"""Filing a batch: one transaction writes, for every row the worker still holds, the executor's
records and cell values, the cell states, the run rows and counters, and the charges.

Charges: one per delivered value, decided by ``Executor.charge`` under the key
``enrich:<run>:<row>:<column>`` (``executor.charge_key``), all in one statement at the end; a
replayed key charges nothing. So no row is lost and no credit is taken twice.
"""

from __future__ import annotations

import functools
import json
import time
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql as pg
from sqlalchemy.exc import DBAPIError

from morket.core.db import utcnow
from morket.extensions import db
from morket.runs.callbacks import place_answer
from morket.runs.executor import Executor, RowOutcome, RunPlanLike
from morket.runs.leases import CALLBACK_TIMEOUT_SECONDS, PAUSE_CREDITS, cells_written, pause_run, state_patch
from morket.runs.models import Run, RunRow
from morket.tables import storage
from morket.tables.models import Table


class OutOfCredits(Exception):
    """A charge found the balance short: the batch is written again with its billable rows released."""


@dataclass
class WriteSummary:
    written: int = 0
    finals: int = 0
    credits: int = 0
    out_of_credits: bool = False
    # Seconds spent in the credit charges of the batch (the bench reports the share).
    charge_s: float = 0.0


_ROW_STATUS = {
    "final": "done",
    "retry": "pending",
    "await": "awaiting_callback",
    "release": "pending",
    "resume": "pending",
}


def _array_item(kind: str, value: Any) -> Any:
    """A cell value as one element of the array its column's values travel in (see _cells_update)."""
    if kind == "jsonb":
        return json.dumps(value)
    if kind == "text[]":
        return None if value is None else json.dumps(list(value))
    return value


@functools.lru_cache(maxsize=512)
def _cells_update(schema: str, table: str, names: tuple[str, ...], kinds: tuple[str, ...]) -> sa.TextClause:
    """UPDATE of a batch's cell states and the ``names`` columns from arrays, one element per row.

    JSON values travel as text and array values (multi select) as JSON text: an array of arrays
    cannot be unnested row by row.
    """
    sources, sets = ["CAST(:_row AS bigint[])", "CAST(:_state AS text[])"], []
    for i, (name, kind) in enumerate(zip(names, kinds, strict=True)):
        if kind == "jsonb":
            sources.append(f"CAST(:v{i} AS text[])")
            value = f"v.v{i}::jsonb"
        elif kind == "text[]":
            sources.append(f"CAST(:v{i} AS text[])")
            elements = f"ARRAY(SELECT jsonb_array_elements_text(v.v{i}::jsonb))"
            value = f"CASE WHEN v.v{i} IS NULL THEN NULL ELSE {elements} END"
        else:
            sources.append(f"CAST(:v{i} AS {kind}[])")
            value = f"v.v{i}"
        sets.append(f'"{name}" = {value}')
    aliases = ", ".join(["_row", "_state", *(f"v{i}" for i in range(len(names)))])
    return sa.text(
        f'UPDATE "{schema}"."{table}" AS t'  # noqa: S608 - generated table and column names only
        f" SET cell_state = coalesce(t.cell_state, '{{}}'::jsonb) || v._state::jsonb"
        + "".join(f", {item}" for item in sets)
        + f" FROM unnest({', '.join(sources)}) AS v({aliases}) WHERE t.id = v._row"
    )


def _held_rows(plan: RunPlanLike, ids: list[int], owner: str | None) -> dict[int, Any]:
    """The batch's rows this worker still holds, locked, with any asynchronous answer kept on them."""
    rr = RunRow.__table__
    guard = rr.c.status == "leased"
    if owner is not None:
        guard = sa.and_(guard, rr.c.lease_owner == owner)
    # The batch's ids joined as an array: one primary-key probe per row, whatever the statistics
    # (an IN list could be planned as a scan of the partial lease index over every run's rows).
    batch = (
        sa.func.unnest(sa.cast(sa.literal(ids), pg.ARRAY(sa.BigInteger)))
        .table_valued("row_id")
        .render_derived(name="batch")
    )
    return dict(
        db.session.execute(
            sa.select(rr.c.row_id, rr.c.result)
            .select_from(batch.join(rr, sa.and_(rr.c.run_id == plan.run_id, rr.c.row_id == batch.c.row_id)))
            .where(guard)
            .order_by(rr.c.row_id)
            .with_for_update(of=rr)
        ).all()
    )


def _continue_answered(
    executor: Executor, plan: RunPlanLike, outcomes: Sequence[RowOutcome], held: dict[int, Any], backoff_base: float
) -> None:
    """An await whose answer already arrived (kept raw on the leased row) continues from it at once.

    The answer is read here, where the step that asked is known, and recorded like any callback's.
    """
    run = None
    for o in outcomes:
        early = held.get(o.row_id)
        if o.kind != "await" or not isinstance(early, dict) or early.get("callback_id") != o.callback_id:
            continue
        if "early" not in early or early.get("provider") != o.provider:
            continue
        run = run or db.session.get(Run, plan.run_id)
        answer = executor.answer(run, o.row_id, o.step_index, o.provider or "", early["early"])
        if answer is None:
            continue
        place = place_answer(answer, o.step_index, o.attempts, backoff_base)
        o.kind, o.state, o.callback_id = "resume", "queued", None
        o.step_index, o.attempts, o.message = place.step_index, place.attempts, place.message
        o.next_attempt_at = utcnow() + timedelta(seconds=place.delay)
        held[o.row_id] = (
            {**answer, "callback_id": early["callback_id"], "step_index": o.step_index} if place.keep else None
        )


def write_outcomes(  # the one place a batch's results are filed
    executor: Executor,
    table: Table,
    plan: RunPlanLike,
    outcomes: Sequence[RowOutcome],
    *,
    owner: str | None = None,
    backoff_base: float = 2.0,
) -> WriteSummary:
    """File a batch's outcomes in the caller's transaction, for the rows this worker still holds.

    Rows whose lease was taken away (cancelled, or reclaimed by the reconciler) are skipped, so
    their results are dropped and nothing is charged for them.
    """
    from morket.credits.service import InsufficientCredits, charge_many
    from morket.tables import service as table_service
    from morket.workspaces.models import Workspace

    summary = WriteSummary()
    ids = sorted(o.row_id for o in outcomes)
    if not ids:
        return summary
    held = _held_rows(plan, ids, owner)
    outcomes = [o for o in sorted(outcomes, key=lambda o: o.row_id) if o.row_id in held]
    if not outcomes:
        return summary
    _continue_answered(executor, plan, outcomes, held, backoff_base)

    # The executor's records, then what the workspace pays (the charging rule).
    changes = executor.file(table, plan, outcomes)
    billed = [c for o in outcomes if (c := executor.charge(plan, o)) is not None]
    summary.credits = sum(c.amount for c in billed)

    # The user table: values the rows delivered, then every row's cell state.
    store = storage.storage_for(table)
    groups: dict[tuple[int, ...], list[dict[str, Any]]] = defaultdict(list)
    for o in outcomes:
        cells = changes.get(o.row_id, {})
        key = tuple(sorted(cells))
        message = o.message if o.state in ("error", "retrying", "rate_limited") else None
        groups[key].append(
            {
                "_row": o.row_id,
                "_state": state_patch(plan.column_id, o.state, plan.run_id, o.provider, message),
                **{f"v_{cid}": cells[cid] for cid in key},
            }
        )
    # One UPDATE over arrays per set of written columns: its text depends only on those columns, so
    # it is built and compiled once (a VALUES list is compiled again for every batch; an
    # executemany would be one statement per row).
    for key, params in groups.items():
        kinds = tuple(storage.sql_type(store.types[cid]) for cid in key)
        arrays: dict[str, list[Any]] = {
            "_row": [p["_row"] for p in params],
            "_state": [json.dumps(p["_state"]) for p in params],
        }
        for i, (cid, kind) in enumerate(zip(key, kinds, strict=True)):
            arrays[f"v{i}"] = [_array_item(kind, p[f"v_{cid}"]) for p in params]
        statement = _cells_update(
            store.rows.schema, store.rows.name, tuple(store.columns[cid].name for cid in key), kinds
        )
        db.session.execute(statement, arrays)
    workspace = db.session.get(Workspace, plan.workspace_id)
    changed = {plan.column_id} | {cid for cells in changes.values() for cid in cells}
    table_service.mark_views_stale(workspace, table, changed)  # views filtered on these cells

    # The run rows, in one statement over arrays (an executemany would be one statement per row).
    now = utcnow()
    columns: dict[str, list[Any]] = defaultdict(list)
    for o in outcomes:
        columns["row_id"].append(o.row_id)
        columns["status"].append(_ROW_STATUS[o.kind])
        columns["state"].append(o.state if o.kind == "final" else None)
        columns["step_index"].append(o.step_index)
        columns["attempts"].append(o.attempts)
        columns["next_attempt_at"].append(o.next_attempt_at or now)
        columns["lease_expires_at"].append(
            now + timedelta(seconds=CALLBACK_TIMEOUT_SECONDS) if o.kind == "await" else None
        )
        columns["callback_id"].append(o.callback_id if o.kind == "await" else None)
        columns["provider"].append(o.provider)
        columns["message"].append((o.message or None) and str(o.message)[:1000])
        # A row given back keeps an asynchronous answer it holds: it is continued, not asked again.
        columns["keep_result"].append(o.kind == "release")
        # A row whose early answer was read here keeps that answer: it is continued from it.
        answer = held[o.row_id] if o.kind == "resume" else None
        columns["result"].append(json.dumps(answer) if answer is not None else None)
    db.session.execute(
        sa.text(
            "UPDATE enrichment_run_rows AS rr SET status = v.status, state = v.state,"
            " step_index = v.step_index, attempts = v.attempts, next_attempt_at = v.next_attempt_at,"
            " lease_owner = NULL, lease_expires_at = v.lease_expires_at, callback_id = v.callback_id,"
            " provider = v.provider, message = v.message,"
            " result = CASE WHEN v.keep_result THEN rr.result ELSE v.result::jsonb END"
            " FROM unnest(CAST(:row_id AS bigint[]), CAST(:status AS text[]), CAST(:state AS text[]),"
            " CAST(:step_index AS int[]), CAST(:attempts AS int[]), CAST(:next_attempt_at AS timestamptz[]),"
            " CAST(:lease_expires_at AS timestamptz[]), CAST(:callback_id AS text[]), CAST(:provider AS text[]),"
            " CAST(:message AS text[]), CAST(:keep_result AS boolean[]), CAST(:result AS text[]))"
            " AS v(row_id, status, state, step_index, attempts, next_attempt_at, lease_expires_at, callback_id,"
            " provider, message, keep_result, result)"
            " WHERE rr.run_id = :run_id AND rr.row_id = v.row_id"
        ),
        {"run_id": plan.run_id, **columns},
    )

    finals = [o for o in outcomes if o.kind == "final"]
    counts: dict[str, int] = defaultdict(int)
    for o in finals:
        counts[{"success": "succeeded", "no_data": "no_data", "error": "failed"}.get(o.state, "failed")] += 1
    runs = Run.__table__
    if finals or summary.credits:
        db.session.execute(
            sa.update(runs)
            .where(runs.c.id == plan.run_id)
            .values(
                done=runs.c.done + len(finals),
                succeeded=runs.c.succeeded + counts["succeeded"],
                no_data=runs.c.no_data + counts["no_data"],
                failed=runs.c.failed + counts["failed"],
                credits_used=runs.c.credits_used + summary.credits,
                updated_at=sa.func.clock_timestamp(),
            )
        )
    # Charges last, all in one statement: the first takes the workspace's balance row lock until
    # the commit, so the shorter the stretch after it, the less two workers' batches queue behind
    # each other.
    charging_since = time.perf_counter()
    try:
        entries = charge_many(plan.workspace_id, billed)
    except InsufficientCredits:
        raise OutOfCredits from None
    # A value paid for before (a replayed batch) costs nothing more.
    refunded = sum(c.amount for c, entry in zip(billed, entries, strict=True) if entry is None)
    summary.charge_s = time.perf_counter() - charging_since
    if refunded:
        db.session.execute(
            sa.update(runs).where(runs.c.id == plan.run_id).values(credits_used=runs.c.credits_used - refunded)
        )
        summary.credits -= refunded
    # Listeners (outbound webhooks) learn which cells ended, with the batch's transaction: a batch
    # written again (a deadlock, short credits) announces only what its last write filed.
    cells_written(
        table,
        plan.run_id,
        [{"row_id": o.row_id, "column_id": plan.column_id, "state": o.state, "provider": o.provider} for o in finals],
    )
    summary.written = len(outcomes)
    summary.finals = len(finals)
    return summary


def write_with_retry(
    executor: Executor,
    table: Table,
    plan: RunPlanLike,
    outcomes: Sequence[RowOutcome],
    owner: str,
    backoff_base: float = 2.0,
) -> WriteSummary:
    """Write the batch; a deadlock or serialisation failure is retried (the rows are still leased).

    When the credits run out part-way, the whole batch is written again with every row that
    needed a charge given back (its answer is not delivered, so nothing is owed), and the run
    pauses until credits are added.
    """
    from morket.credits.service import balance

    short = False
    for attempt in range(3):
        try:
            summary = write_outcomes(executor, table, plan, outcomes, owner=owner, backoff_base=backoff_base)
            if short:
                summary.out_of_credits = True
                pause_run(plan.run_id, PAUSE_CREDITS)
            return summary
        except OutOfCredits:
            db.session.rollback()
            if attempt == 2:
                raise
            # First try: keep the rows the balance covers, in order; then: keep none.
            left = balance(plan.workspace_id) if not short else 0
            short = True
            for o in sorted(outcomes, key=lambda o: o.row_id):
                owed = executor.charge(plan, o)
                cost = owed.amount if owed is not None else 0
                if cost <= 0:
                    continue
                if cost <= left:
                    left -= cost
                else:
                    o.release()
        except DBAPIError as exc:
            code = getattr(getattr(exc, "orig", None), "sqlstate", None)
            db.session.rollback()
            if code not in ("40P01", "40001") or attempt == 2:
                raise
    raise AssertionError("unreachable")
