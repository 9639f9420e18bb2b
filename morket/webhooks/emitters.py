"""Where the app's changes become webhook events, in the transaction of the change.

- Rows: tables announces rows created, updated and deleted (``tables.hooks.on_row_events``) from
  every path (grid, paste, API). One event carries up to ``WEBHOOK_ROW_BATCH`` row ids (500 by
  default), so a paste of 10,000 rows is 20 events per endpoint, not 10,000 calls; receivers
  read the rows' values through the API when they need them. A CSV import does not emit row
  events at all: it emits one ``import.finished`` with its counts (a million-row import is one
  event).
- Enrichment runs: the run engine announces a run that completed, failed or was cancelled
  (``runs.leases.on_run_finished``); ``run.finished`` carries its counts and credits. It announces
  the cells each written batch ended in a final state (``runs.leases.on_cells_written``);
  ``enrichment.cell_completed`` carries up to ``WEBHOOK_ROW_BATCH`` items of row id, column id,
  state and provider: no values, no provider payloads. A CRM push (a run of kind ``crm_push``)
  emits neither: it emits one ``crm.push_finished`` with its counts when it ends.
- Imports and exports: a ``DataRun`` reaching a final status (done, failed, cancelled) in a
  flush emits ``import.finished`` or ``export.finished`` (a session listener: dataops knows
  nothing of webhooks).

Nothing is written when no enabled endpoint of the workspace subscribes to the event type.
"""

from __future__ import annotations

from typing import Any

from flask import current_app, has_app_context
from sqlalchemy import event, inspect
from sqlalchemy.orm import Session

from morket.extensions import db
from morket.webhooks import service

_FINAL = ("done", "failed", "cancelled")


def on_row_events(table: Any, kind: str, row_ids: list[int]) -> None:
    """Emit ``row.<kind>`` events for ``row_ids`` of ``table``, in batches of WEBHOOK_ROW_BATCH ids."""
    event_type = f"row.{kind}"
    endpoints = service.subscribed_endpoints(table.workspace_id, event_type)
    if not endpoints:
        return
    batch = max(1, int(current_app.config["MORKET"].get("WEBHOOK_ROW_BATCH") or 500))
    for start in range(0, len(row_ids), batch):
        chunk = row_ids[start : start + batch]
        service.emit_event(
            table.workspace_id,
            event_type,
            {"table": {"id": table.id, "name": table.name}, "row_ids": chunk, "count": len(chunk)},
            endpoints=endpoints,
        )


def on_cells_written(table: Any, run_id: int, items: list[dict[str, Any]]) -> None:
    """Emit ``enrichment.cell_completed`` for a batch's final cells, WEBHOOK_ROW_BATCH items an event.

    Only enrichment runs: a CRM push (a run of another kind) announces itself once, when it finishes.
    """
    from morket.runs.models import Run

    endpoints = service.subscribed_endpoints(table.workspace_id, "enrichment.cell_completed")
    if not endpoints:
        return
    run = db.session.get(Run, run_id)
    if run is not None and run.kind != "enrichment":
        return
    batch = max(1, int(current_app.config["MORKET"].get("WEBHOOK_ROW_BATCH") or 500))
    for start in range(0, len(items), batch):
        chunk = [
            {"row_id": i["row_id"], "column_id": i["column_id"], "state": i["state"], "provider": i["provider"]}
            for i in items[start : start + batch]
        ]
        service.emit_event(
            table.workspace_id,
            "enrichment.cell_completed",
            {"table": {"id": table.id, "name": table.name}, "run_id": run_id, "cells": chunk, "count": len(chunk)},
            endpoints=endpoints,
        )


def _data_run_finished(run: Any) -> None:
    event_type = f"{run.kind}.finished"
    if event_type not in service.EVENT_TYPES:
        return
    data: dict[str, Any] = {
        "id": run.id,
        "status": run.status,
        "table_id": run.table_id,
        "file_name": run.file_name,
        "message": run.message,
    }
    if run.kind == "import":
        data.update(rows_in=run.rows_in, rows_updated=run.rows_updated, rows_skipped=run.rows_skipped)
    else:
        data.update(rows_out=run.rows_out, size_bytes=run.size_bytes)
    service.emit_event(run.workspace_id, event_type, data)


def _after_flush(session: Session, flush_context: Any) -> None:
    # Ids exist now; the events are written at commit (a flush cannot flush again inside itself).
    from morket.dataops.models import DataRun

    for obj in list(session.new) + list(session.dirty):
        if not isinstance(obj, DataRun) or obj.status not in _FINAL:
            continue
        if obj in session.new or inspect(obj).attrs.status.history.added:
            session.info.setdefault("morket_webhooks_runs", {})[obj.id] = obj


def _before_commit(session: Session) -> None:
    runs = session.info.pop("morket_webhooks_runs", None)
    if runs and has_app_context():
        for run in runs.values():
            _data_run_finished(run)


def _after_rollback(session: Session) -> None:
    session.info.pop("morket_webhooks_runs", None)


def on_run_finished(run_id: int, status: str) -> None:
    """Emit ``run.finished`` for an enrichment run that completed, failed or was cancelled, with its counts."""
    from morket.runs.models import Run

    run = db.session.get(Run, run_id, populate_existing=True)
    if run is None:
        return
    if run.kind == "crm_push":
        _push_finished(run, status)
        return
    service.emit_event(
        run.workspace_id,
        "run.finished",
        {
            "id": run.id,
            "status": status,
            "table_id": run.table_id,
            "column_id": run.column_id,
            "total": run.total,
            "succeeded": run.succeeded,
            "no_data": run.no_data,
            "failed": run.failed,
            "skipped": run.skipped,
            "cancelled": run.cancelled,
            "credits_used": run.credits_used,
        },
    )


def _push_finished(run: Any, status: str) -> None:
    """``crm.push_finished``: the push's counts (records created and updated), never values."""
    from sqlalchemy import func, select

    from morket.runs.models import RunRow

    rr = RunRow.__table__
    created, updated = db.session.execute(
        select(
            func.count().filter(rr.c.provider.like("%:created")), func.count().filter(rr.c.provider.like("%:updated"))
        ).where(rr.c.run_id == run.id, rr.c.status == "done")
    ).one()
    config = run.config or {}
    service.emit_event(
        run.workspace_id,
        "crm.push_finished",
        {
            "id": run.id,
            "status": status,
            "table_id": run.table_id,
            "provider": config.get("provider"),
            "object": config.get("object"),
            "total": run.total,
            "created": int(created or 0),
            "updated": int(updated or 0),
            "failed": run.failed,
            "cancelled": run.cancelled,
        },
    )


def register() -> None:
    """Register the listeners once (the blueprint's ``register``)."""
    from morket.runs import leases
    from morket.tables import hooks

    hooks.on_row_events("webhooks", on_row_events)
    leases.on_run_finished("webhooks", on_run_finished)
    leases.on_cells_written("webhooks", on_cells_written)
    if not event.contains(Session, "after_flush", _after_flush):
        event.listen(Session, "after_flush", _after_flush)
        event.listen(Session, "before_commit", _before_commit)
        event.listen(Session, "after_rollback", _after_rollback)
