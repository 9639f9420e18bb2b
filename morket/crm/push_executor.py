"""The CRM push executor: rows of a table upserted into HubSpot or Salesforce by key, on the row-run engine.

A push is a run (``Run.kind = "crm_push"``) whose column is the one receiving the CRM record ids;
each row's cell state there shows queued, running, success or the CRM's own error message.

How rows become batch calls: the engine leases ``PushPlan.batch_rows`` rows at a time (100 for
HubSpot, 200 for Salesforce: one CRM call's worth) and hands each row to a pool thread. ``prepare``
reads the leased rows once and cuts them into calls (``_Batch``); the first thread to ask for a
row of a call makes that call under the call's lock, and every other row of it takes its own
result from the answer. So the engine stays per row (leases, retries, states, reconciling) while
the CRM sees one call per batch. A row's result is final (its record id written back, or the
CRM's message), or a retry with backoff (429 storms past the lease, 5xx, the daily limit), or,
after a 401, a retry at once: the pool threads hold no database session, so the job thread
refreshes the token (once, under the connection's lock, ``tokens.refresh_access``) before the
next batch. Upserts by key are idempotent, so a replayed batch (a killed worker, an expired
lease) updates the records it created and never duplicates them. A push is free: ``charge``
bills nothing.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from flask import current_app

from morket.core.db import utcnow
from morket.crm import tokens
from morket.crm.client import CrmUnavailable
from morket.crm.models import CrmConnection
from morket.crm.push_calls import (
    LIMIT_BACKOFF_SECONDS,
    Limiter,
    PushRecord,
    RecordResult,
    Sender,
    Target,
    base_url,
    to_crm,
    upsert,
)
from morket.extensions import db
from morket.runs import execute
from morket.runs import reconcile as reconciler
from morket.runs.executor import ClaimedRow, Prepared, RowOutcome, register_executor
from morket.runs.limits import CallScope
from morket.runs.models import Run
from morket.tables import storage
from morket.tables.models import Table

if TYPE_CHECKING:
    from morket.credits.service import Charge

KIND = "crm_push"
# Tries of a row before it ends as an error (rate limits and 5xx; a 401 does not count).
MAX_ATTEMPTS = 8
ROW_KEY = "{}-{}"  # the key sent when a push matches by the Morket row id: <table id>-<row id>


@dataclass
class PushPlan:
    """A push run's configuration as its batches need it (built once per job)."""

    run_id: int
    workspace_id: int
    table_id: int
    column_id: int  # the record-id column
    target: Target
    fields: list[tuple[int, str, str]]  # (column id, CRM field, field kind)
    key_column_id: int | None  # None: the Morket row id
    backoff: float
    limit_backoff: float
    batch_rows: int = 100
    # A token version a pool thread saw refused (a 401): the job refreshes past it before the next batch.
    stale_version: int | None = None
    # The connection cannot be used any more (the refresh was refused): every row ends with this.
    fatal: str | None = None


def build_plan(run: Run) -> PushPlan:
    config = run.config or {}
    connection = db.session.get(CrmConnection, int(config.get("connection_id") or 0))
    if connection is None or connection.workspace_id != run.workspace_id:
        raise CrmUnavailable("The CRM was disconnected; connect it again and push once more.")
    settings = current_app.config["MORKET"]
    target = Target(
        provider=connection.provider,
        connection_id=connection.id,
        object=str(config["object"]),
        key_field=str(config["key_field"]),
        base_url=base_url(connection.provider, settings, connection.instance_url),
        kinds={f["field"]: f["kind"] for f in config.get("fields", [])}
        | {config["key_field"]: config.get("key_kind", "text")},
    )
    return PushPlan(
        run_id=run.id,
        workspace_id=run.workspace_id,
        table_id=run.table_id,
        column_id=run.column_id,
        target=target,
        fields=[(int(f["column_id"]), str(f["field"]), str(f["kind"])) for f in config.get("fields", [])],
        key_column_id=config.get("key_column_id"),
        backoff=float(settings.get("ENRICHMENT_BACKOFF_SECONDS") or 2.0),
        limit_backoff=float(settings.get("CRM_PUSH_LIMIT_BACKOFF_SECONDS") or LIMIT_BACKOFF_SECONDS),
        batch_rows=target.batch_size,
    )


# --- reading a leased batch -----------------------------------------------------------------------


@dataclass
class _Call:
    records: list[PushRecord]
    lock: threading.Lock = field(default_factory=threading.Lock)
    results: dict[int, RecordResult] | None = None


@dataclass
class _Batch:
    """The leased rows as CRM calls, and the rows that need no call (no key, a repeated key)."""

    claimed: dict[int, ClaimedRow]
    calls: dict[int, _Call] = field(default_factory=dict)  # row id -> its call
    settled: dict[int, RecordResult] = field(default_factory=dict)


def read_records(table: Table, plan: PushPlan, claimed: Sequence[ClaimedRow]) -> tuple[_Batch, list[int]]:
    """Read the claimed rows' key and mapped cells and cut them into calls of one batch's size."""
    store = storage.storage_for(table)
    wanted = [cid for cid, _, _ in plan.fields if cid in store.columns]
    key_col = store.columns.get(plan.key_column_id) if plan.key_column_id else None
    cols = [store.columns[cid] for cid in wanted] + ([key_col] if key_col is not None else [])
    ids = [c.row_id for c in claimed]
    found = {r[0]: r[1:] for r in db.session.execute(sa.select(store.rows.c.id, *cols).where(store.rows.c.id.in_(ids)))}
    batch = _Batch({c.row_id: c for c in claimed if c.row_id in found})
    kinds = dict(zip(wanted, [k for cid, _, k in plan.fields if cid in store.columns], strict=True))
    names = dict(zip(wanted, [f for cid, f, _ in plan.fields if cid in store.columns], strict=True))
    key_kind = plan.target.kinds.get(plan.target.key_field, "text")
    seen: dict[str, int] = {}
    records: list[PushRecord] = []
    for row_id in sorted(batch.claimed):
        cells = found[row_id]
        if key_col is None:
            key = ROW_KEY.format(plan.table_id, row_id)
        else:
            key = to_crm(cells[-1], key_kind, plan.target.provider)
        if key is None or str(key).strip() == "":
            batch.settled[row_id] = RecordResult("error", message=f"No {plan.target.key_field} in this row: the CRM "
                                                 "matches records by it.")  # fmt: skip
            continue
        key = str(key)
        norm = key.lower() if key_kind == "email" else key
        if norm in seen:
            batch.settled[row_id] = RecordResult(
                "error",
                message=f"Row {seen[norm]} of this push has the same {plan.target.key_field}; it was sent once.",
            )
            continue
        seen[norm] = row_id
        values = {}
        for i, cid in enumerate(wanted):
            value = to_crm(cells[i], kinds[cid], plan.target.provider)
            if value is not None:
                values[names[cid]] = value
        records.append(PushRecord(row_id, key, values))
    size = plan.target.batch_size
    for start in range(0, len(records), size):
        call = _Call(records[start : start + size])
        for record in call.records:
            batch.calls[record.row_id] = call
    missing = sorted({c.row_id for c in claimed} - set(batch.claimed))
    return batch, missing


# --- one row's result -------------------------------------------------------------------------------


def _outcome(plan: PushPlan, row: ClaimedRow, result: RecordResult) -> RowOutcome:
    base = {"row_id": row.row_id, "origin": (row.step_index, row.attempts), "step_index": 0}
    if result.status == "ok":
        verb = "created" if result.created else "updated"
        return RowOutcome(kind="final", state="success", provider=f"{plan.target.provider}:{verb}",
                          value=result.record_id, attempts=row.attempts + 1, **base)  # fmt: skip
    if result.status == "error":
        return RowOutcome(kind="final", state="error", provider=plan.target.provider, message=result.message,
                          attempts=row.attempts + 1, **base)  # fmt: skip
    attempts = row.attempts + 1
    if result.status == "session" and attempts < MAX_ATTEMPTS:
        return RowOutcome(kind="retry", state="queued", attempts=attempts, next_attempt_at=utcnow(), **base)
    if attempts >= MAX_ATTEMPTS:
        return RowOutcome(kind="final", state="error", provider=plan.target.provider, attempts=attempts,
                          message=f"Gave up after {attempts} tries: {result.message}", **base)  # fmt: skip
    delay = max(result.delay, plan.backoff * (2 ** (attempts - 1)) if result.delay else 0.0)
    return RowOutcome(kind="retry", state="rate_limited" if "limit" in (result.message or "").lower() else "retrying",
                      message=result.message, attempts=attempts, next_attempt_at=utcnow() + timedelta(seconds=delay),
                      **base)  # fmt: skip


class _RowWorker:
    def __init__(self, plan: PushPlan, batch: _Batch, scope: CallScope, token: tokens.LiveToken | None) -> None:
        self.plan, self.batch, self.scope, self.token = plan, batch, scope, token
        limiter = Limiter(scope.redis, plan.target, plan.limit_backoff)
        self.sender = (
            Sender(
                http=scope.client,
                target=plan.target,
                access_token=token.access_token,
                limiter=limiter,
                deadline=scope.lease_deadline - scope.lease_margin,
                stopped=scope.stop.is_set,
            )
            if token is not None
            else None
        )

    def __call__(self, row: ClaimedRow) -> RowOutcome:
        plan, batch = self.plan, self.batch
        settled = batch.settled.get(row.row_id)
        if settled is not None:
            return _outcome(plan, row, settled)
        if plan.fatal or self.sender is None:
            return _outcome(plan, row, RecordResult("error", message=plan.fatal or "The CRM is not connected."))
        call = batch.calls[row.row_id]
        with call.lock:
            if call.results is None:
                if self.scope.stop.is_set():
                    outcome = _outcome(plan, row, RecordResult("retry"))
                    outcome.release()
                    return outcome
                call.results = upsert(self.sender, call.records)
                if any(r.status == "session" for r in call.results.values()) and self.token is not None:
                    plan.stale_version = self.token.version
        return _outcome(plan, row, call.results[row.row_id])


# --- the executor ------------------------------------------------------------------------------------


class CrmPushExecutor:
    """A CRM push as a ``morket.runs`` executor."""

    kind = KIND
    job = "morket.crm.push_tasks.run_push"

    def plan(self, run: Run, *, resolve_keys: bool = True) -> PushPlan:
        return build_plan(run)

    def min_balance(self, plan: PushPlan) -> int:
        return 0  # a push is free

    def prepare(self, table: Table, plan: PushPlan, claimed: Sequence[ClaimedRow]) -> Prepared:
        batch, missing = read_records(table, plan, claimed)
        return Prepared([batch.claimed[r] for r in sorted(batch.claimed)], missing, batch)

    def row_worker(self, plan: PushPlan, prepared: Prepared, scope: CallScope) -> Callable[[Any], RowOutcome]:
        """Runs in the job thread: the token the batch's calls use (refreshed once after a 401)."""
        settings = current_app.config["MORKET"]
        token = None
        if plan.fatal is None and prepared.shared.calls:
            try:
                if plan.stale_version is not None:
                    token = tokens.refresh_access(plan.target.connection_id, plan.stale_version, settings)
                    plan.stale_version = None
                else:
                    token = tokens.token_for_use(plan.target.connection_id, settings)
            except Exception as exc:  # noqa: BLE001 - a refused refresh or a gone connection ends every row
                plan.fatal = getattr(exc, "message", None) or f"The CRM session could not be renewed: {exc}"
        return _RowWorker(plan, prepared.shared, scope, token)

    def file(self, table: Table, plan: PushPlan, outcomes: Sequence[RowOutcome]) -> dict[int, dict[int, Any]]:
        """The record id into the record-id column of each row the CRM took."""
        return {o.row_id: {plan.column_id: o.value} for o in outcomes if o.kind == "final" and o.state == "success"}

    def charge(self, plan: PushPlan, outcome: RowOutcome) -> Charge | None:
        return None

    def answer(
        self, run: Run, row_id: int, step_index: int, provider: str, payload: Mapping[str, Any]
    ) -> dict[str, Any] | None:
        return None  # a push has no asynchronous answers


EXECUTOR = register_executor(CrmPushExecutor())


def work(run_id: int, slot: int = 0, *, budget: float | None = None) -> dict[str, Any]:
    """Work on a push run (the job body; see ``morket.runs.execute.work``)."""
    started = time.monotonic()
    stats = execute.work(EXECUTOR, run_id, slot, budget=budget)
    stats["push_s"] = time.monotonic() - started
    return stats


def reconcile() -> dict[str, int]:
    """Repair push runs (``morket.runs.reconcile``)."""
    return reconciler.reconcile(EXECUTOR)
