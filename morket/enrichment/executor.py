"""The enrichment executor: a provider waterfall per row, run by the row-run engine (``morket.runs``).

What is enrichment's own: the plan (``plan``), the waterfall (``waterfall``), the row inputs and
the batch's cache prefetch, the attempts and cache entries it files with each batch, the output
cells a delivered value fills, the charging rule (``delivery_charge``) and how an asynchronous
provider's answer reads. Leases, throttling, writing, charging and reconciling are the engine's.
"""

from __future__ import annotations

import importlib
import json
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from morket.core.db import utcnow
from morket.enrichment import cache
from morket.enrichment.config import read_config
from morket.enrichment.models import EnrichmentAttempt
from morket.enrichment.plan import RunPlan, build_plan
from morket.enrichment.waterfall import RowInput, RowWorker, _is_empty, step_inputs
from morket.extensions import db
from morket.providers.base import Result
from morket.runs import execute
from morket.runs import reconcile as reconciler
from morket.runs.executor import ClaimedRow, Prepared, RowOutcome, charge_key, register_executor
from morket.runs.leases import reserve_callbacks
from morket.runs.limits import CallScope
from morket.runs.models import Run
from morket.tables import storage
from morket.tables.cells import CellError, parse_cell
from morket.tables.models import Column, Table

if TYPE_CHECKING:
    from morket.credits.service import Charge

# --- reading a claimed batch ------------------------------------------------------------------------


def read_rows(table: Table, plan: RunPlan, claimed: Sequence[ClaimedRow]) -> list[RowInput]:
    """Read the claimed rows' input cells from the user table (rows deleted since are left out)."""
    store = storage.storage_for(table)
    cols = [store.columns[cid] for cid in plan.input_column_ids if cid in store.columns]
    ids = [c.row_id for c in claimed]
    found = {
        r[0]: dict(zip([int(c.name[2:]) for c in cols], r[1:], strict=True))
        for r in db.session.execute(sa.select(store.rows.c.id, *cols).where(store.rows.c.id.in_(ids)))
    }
    return [
        RowInput(c.row_id, c.step_index, c.attempts, found[c.row_id], c.message, c.stored_result)
        for c in claimed
        if c.row_id in found
    ]


def prefetch_cache(plan: RunPlan, rows: Sequence[RowInput]) -> dict[cache.CacheKey, cache.CachedAnswer]:
    """Look up every step's cache entry for the batch in one query."""
    keys = []
    for row in rows:
        for step in plan.steps[row.step_index :]:
            keys.append(
                (
                    step.operation.key,
                    cache.input_hash(step.operation.key, step_inputs(plan, step, row.values), step.options),
                )
            )
    return cache.lookup_many(plan.workspace_id, keys)


# --- what a batch files besides the cell states ----------------------------------------------------


def _output_value(column: Column, raw: Any) -> tuple[bool, Any]:
    """(ok, stored value) of a delivered field for an ordinary column of the table."""
    if column.type in ("formula", "enrichment") or _is_empty(raw):
        return False, None
    if column.type != "json" and isinstance(raw, dict | list):
        raw = json.dumps(raw, ensure_ascii=False)
    try:
        return True, parse_cell(column.type, column.config or {}, raw)
    except CellError:
        return False, None


def _cell_updates(table: Table, plan: RunPlan, outcomes: Sequence[RowOutcome]) -> dict[int, dict[int, Any]]:
    """{row_id: {column_id: value}} for successful rows: the enrichment cell and its output cells.

    An output cell is written when it is empty, when it still holds what an earlier enrichment put
    there (it equals the field kept in the enrichment cell), or when the column says overwrite.
    Anything else is a value a user typed and is kept.
    """
    hits = [o for o in outcomes if o.kind == "final" and o.state == "success"]
    if not hits:
        return {}
    columns = {c.id: c for c in table.live_columns}
    store = storage.storage_for(table)
    mappings = [m for m in plan.config.outputs if m.column_id in columns and m.column_id in store.columns]
    own = store.columns.get(plan.column_id)
    current: dict[int, dict[int, Any]] = {}
    if mappings and own is not None:
        cols = [own, *(store.columns[m.column_id] for m in mappings)]
        ids = sorted(o.row_id for o in hits)
        for r in db.session.execute(
            sa.select(store.rows.c.id, *cols)
            .where(store.rows.c.id.in_(ids))
            .order_by(store.rows.c.id)
            .with_for_update()
        ):
            current[r[0]] = {plan.column_id: r[1], **{m.column_id: r[i + 2] for i, m in enumerate(mappings)}}
    changes: dict[int, dict[int, Any]] = {}
    for o in hits:
        cells: dict[int, Any] = {}
        if own is not None:
            cells[plan.column_id] = {"value": o.value, "provider": o.provider, "fields": o.fields or {}}
        now = current.get(o.row_id, {})
        previous = now.get(plan.column_id) or {}
        previous_fields = previous.get("fields", {}) if isinstance(previous, dict) else {}
        for m in mappings:
            column = columns[m.column_id]
            ok, value = _output_value(column, (o.fields or {}).get(m.field))
            if not ok:
                continue
            existing = now.get(m.column_id)
            if not plan.config.overwrite and not _is_empty(existing):
                was_ours, earlier = _output_value(column, previous_fields.get(m.field))
                if not (was_ours and earlier == existing):
                    continue
            cells[m.column_id] = value
        changes[o.row_id] = cells
    return changes


# Columns of an attempt given as arrays (workspace, run and column are one value for the batch).
_ATTEMPT_ARRAYS = {
    "id": "bigint",
    "row_id": "bigint",
    "provider": "text",
    "operation": "text",
    "step_index": "int",
    "outcome": "text",
    "http_status": "int",
    "latency_ms": "int",
    "cost": "int",
    "key_source": "text",
    "cached": "boolean",
    "message": "text",
}
_INSERT_ATTEMPTS = sa.text(
    "INSERT INTO enrichment_attempts (workspace_id, run_id, column_id, "  # noqa: S608 - constant names above
    + ", ".join(_ATTEMPT_ARRAYS)
    + ") SELECT :workspace_id, :run_id, :column_id, v.* FROM unnest("
    + ", ".join(f"CAST(:{name} AS {kind}[])" for name, kind in _ATTEMPT_ARRAYS.items())
    + ") AS v("
    + ", ".join(_ATTEMPT_ARRAYS)
    + ")"
)


def _allocate_attempt_ids(count: int) -> list[int]:
    if count <= 0:
        return []
    return list(
        db.session.scalars(
            sa.text("SELECT nextval(pg_get_serial_sequence('enrichment_attempts', 'id')) FROM generate_series(1, :n)"),
            {"n": count},
        )
    )


def delivery_charge(plan: RunPlan, outcome: RowOutcome) -> Charge | None:
    """The charging rule, decided here and nowhere else: what a row's outcome costs the workspace.

    A row pays once per value it delivers (a final success): the price of the step that delivered
    it plus the column's validation (``RunPlan.value_price``), under the key
    ``enrich:<run>:<row>:<column>`` so that a replayed batch or a second worker charges nothing
    more. Rejected, not-found, failed and unfinished rows cost nothing (their attempts are still
    logged with the provider's cost). A value the workspace's cache answered costs nothing: it was
    paid for when a provider first delivered it. A value delivered entirely on the workspace's own
    keys is recorded as a free "usage" entry; a free operation on no own key writes no entry.
    """
    from morket.credits.service import Charge

    if outcome.kind != "final" or outcome.state != "success" or outcome.step_index >= len(plan.steps):
        return None
    delivered_by = outcome.delivered_by
    if delivered_by is not None and delivered_by.cached:
        return None
    step = plan.steps[outcome.step_index]
    amount = plan.value_price(step)
    parts = [step.operation] + ([plan.validation] if plan.validation is not None else [])
    own = plan.own_providers
    if amount == 0:
        if not any(op.provider in own for op in parts):
            return None
        key_source = "own"
    else:
        paid = [plan.keys[op.provider].source for op in parts if op.provider not in own and plan.prices.get(op.key)]
        key_source = "platform" if "platform" in paid else "none"
    return Charge(
        amount,
        charge_key(plan.run_id, outcome.row_id, plan.column_id),
        run_id=plan.run_id,
        row_id=outcome.row_id,
        column_id=plan.column_id,
        attempt_id=delivered_by.attempt_id if delivered_by is not None else None,
        provider=step.provider.name,
        operation=step.operation.key,
        key_source=key_source,
    )


def file_outcomes(table: Table, plan: RunPlan, outcomes: Sequence[RowOutcome]) -> dict[int, dict[int, Any]]:
    """Write the batch's attempts and fresh cache entries; return the cells its values fill per row."""
    # Attempt ids first, so each ledger entry can point at the attempt that caused it.
    records = [a for o in outcomes for a in o.attempt_log if a.record]
    for record, attempt_id in zip(records, _allocate_attempt_ids(len(records)), strict=True):
        record.attempt_id = attempt_id
    attempt_rows = [
        {
            "id": a.attempt_id,
            "row_id": o.row_id,
            "provider": a.provider,
            "operation": a.operation,
            "step_index": a.step_index,
            "outcome": a.outcome,
            "http_status": a.http_status,
            "latency_ms": a.latency_ms,
            "cost": max(a.cost, 0),
            "key_source": a.key_source,
            "cached": a.cached,
            "message": (a.message or None) and str(a.message)[:1000],
        }
        for o in outcomes
        for a in o.attempt_log
        if a.record
    ]
    if attempt_rows:
        # One INSERT over arrays: a single statement whatever the batch size, whose text never
        # changes (a multi-row VALUES is compiled again for every batch; executemany sends one
        # statement per attempt).
        arrays = {name: [r[name] for r in attempt_rows] for name in _ATTEMPT_ARRAYS}
        db.session.execute(
            _INSERT_ATTEMPTS,
            {"workspace_id": plan.workspace_id, "run_id": plan.run_id, "column_id": plan.column_id, **arrays},
        )
    fresh = {
        a.cache_key: cache.CachedAnswer(a.outcome, a.cache_values or {})
        for o in outcomes
        for a in o.attempt_log
        if a.cache_key is not None and not a.cached
    }
    cache.store_many(plan.workspace_id, fresh, plan.cache_ttl)
    return _cell_updates(table, plan, outcomes)


# --- asynchronous answers ---------------------------------------------------------------------------


def _callback_result(provider_name: str, operation_key: str, payload: Mapping[str, Any]) -> Result:
    """Turn a provider's webhook body into a Result (the adapter's parser when it has one)."""
    from morket.providers import registry

    provider = registry.get_provider(provider_name)  # an unknown name stops here, before any import
    op = registry.get_operation(operation_key)
    try:
        module = importlib.import_module(f"{registry.PACKAGE}.{provider.name}")
    except ImportError:
        module = None
    parser = getattr(module, "result_from_webhook", None)
    if callable(parser):
        parsed = parser(payload)
        return parsed[1] if isinstance(parsed, tuple) else parsed
    if "outcome" in payload:
        return Result(outcome=payload["outcome"], values=dict(payload.get("values") or {}))
    status = payload.get("status")
    body = payload.get("body")
    if status == 404 or body is None:
        return Result(outcome="not_found", http_status=404)
    if isinstance(status, int) and status >= 500:
        return Result(outcome="retryable", http_status=status)
    if isinstance(body, Mapping):
        return Result(outcome="hit", values={k: body[k] for k in op.output_names if k in body}, http_status=200)
    return Result(outcome="invalid_input", message="The callback body could not be read.")


def record_answer(
    run: Run, row_id: int, step_index: int, provider: str, payload: Mapping[str, Any]
) -> dict[str, Any] | None:
    """Write the attempt of an asynchronous answer and return the answer the row keeps.

    The workspace pays only if the row delivers the value (``delivery_charge``, when a worker
    continues the row); the attempt records what the call cost at the provider.
    """
    from morket.credits.prices import price

    config = read_config(run.config)
    if step_index >= len(config.steps):
        return None
    operation = config.steps[step_index].operation
    sent = db.session.scalar(
        sa.select(EnrichmentAttempt)
        .where(
            EnrichmentAttempt.run_id == run.id,
            EnrichmentAttempt.row_id == row_id,
            EnrichmentAttempt.operation == operation,
            EnrichmentAttempt.outcome == "pending",
        )
        .order_by(EnrichmentAttempt.id.desc())
        .limit(1)
    )
    result = _callback_result(provider, operation, payload)
    started = sent.created_at if sent is not None else utcnow()
    attempt = EnrichmentAttempt(
        workspace_id=run.workspace_id,
        run_id=run.id,
        row_id=row_id,
        column_id=run.column_id,
        provider=provider,
        operation=operation,
        step_index=step_index,
        outcome=result.outcome,
        http_status=result.http_status,
        latency_ms=max(0, int((utcnow() - started).total_seconds() * 1000)),
        cost=price(operation) if result.outcome == "hit" else 0,
        key_source=sent.key_source if sent is not None else "platform",
        cached=False,
        message=result.message,
    )
    db.session.add(attempt)
    db.session.flush()
    return {
        "outcome": result.outcome,
        "values": result.values,
        "http_status": result.http_status,
        "message": result.message,
        # The delivered value's ledger entry points at this attempt.
        "attempt_id": attempt.id,
    }


# --- the executor -----------------------------------------------------------------------------------


class EnrichmentExecutor:
    """Enrichment's provider waterfall as a ``morket.runs`` executor."""

    kind = "enrichment"
    job = "morket.enrichment.tasks.run_enrichment"

    def plan(self, run: Run, *, resolve_keys: bool = True) -> RunPlan:
        """Read the run's steps, validation, keys (once per job), prices and rates."""
        return build_plan(run, resolve_keys=resolve_keys)

    def min_balance(self, plan: RunPlan) -> int:
        """The dearest value the run can deliver."""
        return plan.min_balance

    def prepare(self, table: Table, plan: RunPlan, claimed: Sequence[ClaimedRow]) -> Prepared:
        """Read the rows' input cells and every step's cache entry for the batch."""
        rows = read_rows(table, plan, claimed)
        if any(step.operation.asynchronous for step in plan.steps):
            reserved = reserve_callbacks(plan.run_id, [r.row_id for r in rows])
            for row in rows:
                row.callback_id = reserved.get(row.row_id)
        missing = sorted({c.row_id for c in claimed} - {r.row_id for r in rows})
        return Prepared(rows, missing, prefetch_cache(plan, rows))  # type: ignore[arg-type]

    def row_worker(self, plan: RunPlan, prepared: Prepared, scope: CallScope) -> Callable[[Any], RowOutcome]:
        """One row's waterfall."""
        return RowWorker(plan, scope, prepared.shared)

    def file(self, table: Table, plan: RunPlan, outcomes: Sequence[RowOutcome]) -> dict[int, dict[int, Any]]:
        """Attempts and cache entries; the enrichment cell and its output cells."""
        return file_outcomes(table, plan, outcomes)

    def charge(self, plan: RunPlan, outcome: RowOutcome) -> Charge | None:
        """The charging rule (``delivery_charge``)."""
        return delivery_charge(plan, outcome)

    def answer(
        self, run: Run, row_id: int, step_index: int, provider: str, payload: Mapping[str, Any]
    ) -> dict[str, Any] | None:
        """An asynchronous provider's answer, with its attempt recorded."""
        return record_answer(run, row_id, step_index, provider, payload)


EXECUTOR = register_executor(EnrichmentExecutor())


def work(run_id: int, slot: int = 0, *, budget: float | None = None) -> dict[str, Any]:
    """Work on an enrichment run (the job body; see ``morket.runs.execute.work``)."""
    return execute.work(EXECUTOR, run_id, slot, budget=budget)


def reconcile() -> dict[str, int]:
    """Repair enrichment runs (``morket.runs.reconcile``), then drop expired cache entries."""
    report = reconciler.reconcile(EXECUTOR)
    cache.purge_expired()
    db.session.commit()
    return report
