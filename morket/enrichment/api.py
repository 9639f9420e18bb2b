"""Enrichment over the JSON API: columns, estimates, runs (start, cancel, status), cells, attempts, callbacks.

Everything is looked up inside the caller's workspace, so another workspace's ids answer 404. The
callback endpoint is the one public route: an asynchronous provider posts its answer there, and it
is accepted only with a valid signature made with the key of the workspace that asked.
"""

from __future__ import annotations

import importlib
import json
from collections.abc import Callable
from typing import Any

from flask import request
from sqlalchemy import select

from morket.api.routing import Principal, api_route
from morket.core.errors import MorketError, NotFound, Unauthorized, ValidationFailed
from morket.core.logging import log_security_event
from morket.core.ratelimit import client_ip
from morket.enrichment import columns
from morket.enrichment.models import EnrichmentAttempt, EnrichmentRun
from morket.enrichment.schemas import (
    AttemptOut,
    AttemptQuery,
    CallbackOut,
    CellOut,
    CellQuery,
    ColumnSetup,
    EnrichmentColumnOut,
    EstimateOut,
    RunOut,
    RunQuery,
    RunRequest,
)
from morket.extensions import db
from morket.tables import service as tables
from morket.tables.models import Column, Table

TAG = "Enrichment"
CALLBACK_LIMIT = "600/minute"
MAX_CELLS = 500


def _engine():
    from morket.enrichment import service

    return service


def _column_out(column: Column) -> EnrichmentColumnOut:
    config = columns.column_config(column)
    if config is None:
        raise ValidationFailed("This enrichment column has no valid setup; save it again.")
    return EnrichmentColumnOut(
        id=column.id,
        table_id=column.table_id,
        name=column.name,
        steps=config.steps,
        target=config.target,
        inputs=config.inputs,
        derive=config.derive,
        outputs=[{"field": o.field, "column_id": o.column_id} for o in config.outputs],
        validation=config.validation,
        condition=config.condition,
        auto_run=config.auto_run,
        overwrite=config.overwrite,
    )


def _run_out(run: EnrichmentRun) -> RunOut:
    return RunOut(
        id=run.id,
        table_id=run.table_id,
        column_id=run.column_id,
        scope=run.scope,
        status=run.status,
        pause_reason=run.pause_reason,
        total=run.total,
        done=run.done,
        succeeded=run.succeeded,
        no_data=run.no_data,
        failed=run.failed,
        skipped=run.skipped,
        cancelled=run.cancelled,
        remaining=max(run.total - run.done, 0),
        credits_used=run.credits_used,
        estimate_credits=run.estimate_credits,
        created_at=run.created_at,
        started_at=run.started_at,
        finished_at=run.finished_at,
    )


def _attempt_out(a: EnrichmentAttempt) -> AttemptOut:
    return AttemptOut(
        id=a.id,
        run_id=a.run_id,
        row_id=a.row_id,
        column_id=a.column_id or 0,
        provider=a.provider,
        operation=a.operation,
        step_index=a.step_index,
        outcome=a.outcome,
        http_status=a.http_status,
        latency_ms=a.latency_ms,
        cost=a.cost,
        key_source=a.key_source,
        cached=a.cached,
        message=a.message,
        created_at=a.created_at,
    )


def _table_column(principal: Principal, table_id: int, column_id: int) -> tuple[Table, Column]:
    table = tables.get_table_or_404(principal.workspace, table_id)
    return table, columns.get_enrichment_column_or_404(principal.workspace, table, column_id)


# --- columns ------------------------------------------------------------------------------------------


@api_route(
    "/tables/<int:table_id>/enrichment-columns",
    "GET",
    summary="List a table's enrichment columns",
    tag=TAG,
    permission="enrichment.view",
    response=list[EnrichmentColumnOut],
)
def list_enrichment_columns(principal: Principal, table_id: int) -> list[EnrichmentColumnOut]:
    """Every enrichment column of the table with its waterfall, inputs and outputs."""
    table = tables.get_table_or_404(principal.workspace, table_id)
    found = [columns.column_config(c) and c for c in columns.enrichment_columns(table)]
    return [_column_out(c) for c in found if c]


@api_route(
    "/tables/<int:table_id>/enrichment-columns",
    "POST",
    summary="Add an enrichment column",
    tag=TAG,
    permission="enrichment.run",
    body=ColumnSetup,
    response=EnrichmentColumnOut,
    status=201,
)
def create_enrichment_column(principal: Principal, table_id: int, body: ColumnSetup) -> EnrichmentColumnOut:
    """Outputs name an existing column (``column_id``) or a new one to create (``new_column``)."""
    table = tables.get_table_or_404(principal.workspace, table_id)
    actor = principal.user
    column = columns.create_enrichment_column(principal.workspace, actor, table, body)
    out = _column_out(column)
    db.session.commit()
    return out


@api_route(
    "/tables/<int:table_id>/enrichment-columns/<int:column_id>",
    "GET",
    summary="Get an enrichment column",
    tag=TAG,
    permission="enrichment.view",
    response=EnrichmentColumnOut,
)
def get_enrichment_column(principal: Principal, table_id: int, column_id: int) -> EnrichmentColumnOut:
    """The column's setup."""
    return _column_out(_table_column(principal, table_id, column_id)[1])


@api_route(
    "/tables/<int:table_id>/enrichment-columns/<int:column_id>",
    "PUT",
    summary="Replace an enrichment column's setup",
    tag=TAG,
    permission="enrichment.run",
    body=ColumnSetup,
    response=EnrichmentColumnOut,
)
def update_enrichment_column(
    principal: Principal, table_id: int, column_id: int, body: ColumnSetup
) -> EnrichmentColumnOut:
    """The whole setup is replaced; cells already filled keep their values."""
    table, column = _table_column(principal, table_id, column_id)
    column = columns.update_enrichment_column(principal.workspace, principal.user, table, column.id, body)
    out = _column_out(column)
    db.session.commit()
    return out


@api_route(
    "/tables/<int:table_id>/enrichment-columns/<int:column_id>/estimate",
    "POST",
    summary="Estimate a run",
    tag=TAG,
    permission="enrichment.run",
    body=RunRequest,
    response=EstimateOut,
)
def estimate_enrichment_run(principal: Principal, table_id: int, column_id: int, body: RunRequest) -> EstimateOut:
    """Rows a run would enrich and the most credits it could cost; nothing starts."""
    table, column = _table_column(principal, table_id, column_id)
    found = _engine().estimate_run(principal.workspace, table, column, scope=body.scope, row_ids=body.row_ids)
    from morket.credits import service as credits

    return EstimateOut(
        rows=found.rows,
        max_credits=found.max_credits,
        needs_confirmation=found.needs_confirmation,
        balance=credits.balance(principal.workspace.id),
    )


@api_route(
    "/tables/<int:table_id>/enrichment-columns/<int:column_id>/runs",
    "POST",
    summary="Start a run",
    tag=TAG,
    permission="enrichment.run",
    body=RunRequest,
    response=RunOut,
    status=202,
)
def start_enrichment_run(principal: Principal, table_id: int, column_id: int, body: RunRequest) -> RunOut:
    """Above the confirmation threshold the body must carry ``confirm: true``; poll the run for progress."""
    table, column = _table_column(principal, table_id, column_id)
    run = _engine().start_run(
        principal.workspace,
        principal.user,
        table,
        column,
        scope=body.scope,
        row_ids=body.row_ids,
        confirm=body.confirm,
    )
    out = _run_out(run)
    db.session.commit()
    return out


@api_route(
    "/tables/<int:table_id>/enrichment-columns/<int:column_id>/cells",
    "GET",
    summary="Read enrichment cells",
    tag=TAG,
    permission="enrichment.view",
    query=CellQuery,
    response=list[CellOut],
)
def list_enrichment_cells(principal: Principal, table_id: int, column_id: int, query: CellQuery) -> list[CellOut]:
    """Each requested row's value, the provider that produced it and its cell state; unknown rows are left out."""
    table, column = _table_column(principal, table_id, column_id)
    row_ids = sorted({int(p) for p in query.row_ids.split(",")})
    if len(row_ids) > MAX_CELLS:
        raise ValidationFailed(f"Ask for at most {MAX_CELLS} rows.", fields={"row_ids": ["too many"]})
    from morket.tables import storage

    store = storage.storage_for(table)
    target = store.columns[column.id]
    rows = db.session.execute(
        select(store.rows.c.id, target, store.rows.c.cell_state).where(store.rows.c.id.in_(row_ids))
    )
    out: list[CellOut] = []
    for row_id, value, cell_state in rows:
        state = (cell_state or {}).get(str(column.id)) or {}
        cell = value if isinstance(value, dict) else {}
        out.append(
            CellOut(
                row_id=row_id,
                value=cell.get("value"),
                provider=cell.get("provider") or state.get("provider"),
                fields=cell.get("fields") or {},
                status=state.get("status"),
                message=state.get("message"),
                run_id=state.get("run_id"),
            )
        )
    return sorted(out, key=lambda c: c.row_id)


# --- runs ---------------------------------------------------------------------------------------------


@api_route(
    "/enrichment/runs",
    "GET",
    summary="List enrichment runs",
    tag=TAG,
    permission="enrichment.view",
    query=RunQuery,
    response=list[RunOut],
)
def list_enrichment_runs(principal: Principal, query: RunQuery) -> list[RunOut]:
    """The workspace's runs, newest first."""
    found = _engine().list_runs(principal.workspace, table_id=query.table_id, limit=query.limit)
    return [_run_out(r) for r in found]


@api_route(
    "/enrichment/runs/<int:run_id>",
    "GET",
    summary="Get a run's status",
    tag=TAG,
    permission="enrichment.view",
    response=RunOut,
)
def get_enrichment_run(principal: Principal, run_id: int) -> RunOut:
    """Status and counters: done, succeeded, no data, failed, skipped, remaining, credits used."""
    return _run_out(_engine().get_run_or_404(principal.workspace, run_id))


@api_route(
    "/enrichment/runs/<int:run_id>/cancel",
    "POST",
    summary="Cancel a run",
    tag=TAG,
    permission="enrichment.run",
    response=RunOut,
)
def cancel_enrichment_run(principal: Principal, run_id: int) -> RunOut:
    """Rows not yet done are cancelled and cost nothing; a run already over answers 409."""
    engine = _engine()
    run = engine.get_run_or_404(principal.workspace, run_id)
    engine.cancel_run(principal.workspace, principal.user, run)
    out = _run_out(run)
    db.session.commit()
    return out


@api_route(
    "/enrichment/runs/<int:run_id>/attempts",
    "GET",
    summary="List a run's provider attempts",
    tag=TAG,
    permission="enrichment.view",
    query=AttemptQuery,
    response=list[AttemptOut],
)
def list_enrichment_run_attempts(principal: Principal, run_id: int, query: AttemptQuery) -> list[AttemptOut]:
    """Every provider call of the run (optionally of one row), newest first."""
    engine = _engine()
    run = engine.get_run_or_404(principal.workspace, run_id)
    found = engine.list_attempts(principal.workspace, run=run, row_id=query.row_id)
    return [_attempt_out(a) for a in found]


# --- callbacks of asynchronous providers -----------------------------------------------------------------


def _callback_key() -> str:
    return f"ip:{client_ip()}"


def _callback_id(payload: Any) -> str:
    if isinstance(payload, dict):
        for key in ("id", "webhook_id", "callback_id"):
            value = payload.get(key)
            if isinstance(value, str) and 0 < len(value) <= 64:
                return value
    raise ValidationFailed("The callback carries no request id.", fields={"id": ["missing"]})


def _signature_check(provider: str) -> Callable[[str | None, bytes, str | None], bool] | None:
    """The adapter's ``verify_signature(api_key, body, header)``; None for providers that send no callbacks."""
    from morket.providers import registry

    try:
        registry.get_provider(provider)
        module = importlib.import_module(f"{registry.PACKAGE}.{provider}")
    except (registry.UnknownProvider, ImportError):
        return None
    check = getattr(module, "verify_signature", None)
    return check if callable(check) else None


def _verify_signature(provider: str, check: Callable[..., bool], callback_id: str, raw: bytes) -> None:
    """Check the signature with the key of the workspace whose run row waits for this callback."""
    row = _engine().find_callback_row(provider, callback_id)
    if row is None:
        raise NotFound("No request is waiting for this callback.")
    from morket.credentials import service as credentials

    secret, _source = credentials.resolve_key(row.workspace_id, provider, run_id=row.run_id)
    if not secret or not check(secret, raw, request.headers.get("X-Request-Signature")):
        raise Unauthorized("The callback signature is missing or does not match.")


@api_route(
    "/enrichment/callbacks/<provider>",
    "POST",
    summary="Receive an asynchronous provider's answer",
    tag=TAG,
    authenticated=False,
    response=CallbackOut,
    limit=CALLBACK_LIMIT,
    limit_key=_callback_key,
    errors=(400, 401, 404, 422),
)
def receive_enrichment_callback(provider: str) -> CallbackOut:
    """Called by the provider, not by users: signed with the API key that made the request."""
    check = _signature_check(provider)
    if check is None:
        raise NotFound("There is nothing here.")
    raw = request.get_data(cache=True)
    try:
        payload = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise MorketError("The request body is not valid JSON.") from None
    callback_id = _callback_id(payload)
    try:
        _verify_signature(provider, check, callback_id, raw)
    except Unauthorized:
        log_security_event("callback_signature_refused", provider=provider, ip=client_ip())
        db.session.rollback()
        raise
    _engine().complete_callback(provider, callback_id, payload)
    db.session.commit()
    return CallbackOut(accepted=True)
