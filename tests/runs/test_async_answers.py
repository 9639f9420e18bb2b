"""Asynchronous answers through the row-run engine: an answer that arrives before its batch is filed."""

from __future__ import annotations

import pytest

from morket.credits.prices import price
from morket.enrichment import service
from morket.enrichment.executor import EXECUTOR
from morket.runs import leases, write
from morket.runs.executor import RowOutcome
from morket.tables import service as tables
from tests.enrichment.test_engine_support import (
    attempts,
    cells,
    enrichment_column,
    finish_run,
    grant,
    ledger,
    people_table,
    run_rows,
)
from tests.factories import workspace_with_owner


@pytest.fixture
def clearbit_run(app, db, sandbox):
    """A Clearbit person column over one row, its run started and one batch leased by a worker."""
    settings = app.config["MORKET"]
    saved = settings.get("ENRICHMENT_BACKOFF_SECONDS")
    settings["ENRICHMENT_BACKOFF_SECONDS"] = 0.05
    sandbox.reset()
    workspace, owner = workspace_with_owner()
    grant(workspace, 1_000)
    table, ids = people_table(workspace, owner, 1)
    email = tables.add_column(workspace, owner, table, "Email", "email")
    (row_id,) = cells(table, ids["Title"])
    tables.update_cell(workspace, owner, table, row_id, email.id, "ada@company0.example.com")
    column = enrichment_column(
        workspace,
        owner,
        table,
        ids,
        steps=[{"operation": "clearbit.person"}],
        target="name",
        inputs={"email": email.id},
        outputs=[],
    )
    run = service.start_run(workspace, owner, table, column, scope="all")
    plan = EXECUTOR.plan(run)
    claimed = leases.claim_rows(run.id, "worker-1", 10, 60)
    (row,) = EXECUTOR.prepare(table, plan, claimed).rows
    yield workspace, table, column, run, plan, row
    settings["ENRICHMENT_BACKOFF_SECONDS"] = saved
    sandbox.reset()


def _webhook(callback_id: str, status: int = 200) -> dict:
    body = {"name": {"fullName": "Ada Lovelace"}, "employment": {"title": "Analyst", "name": "Company0"}}
    return {"id": callback_id, "type": "person", "status": status, "body": body if status == 200 else None}


def test_an_answer_before_the_batch_is_filed_fills_the_cell_and_charges_once(db, sandbox, clearbit_run):
    workspace, table, column, run, plan, row = clearbit_run
    assert row.callback_id  # the row carries its answer's id from the lease on
    # Clearbit answers while the worker still holds the row: the answer is kept, not refused.
    assert service.complete_callback("clearbit", row.callback_id, _webhook(row.callback_id)) is not None
    waiting = RowOutcome(
        row.row_id, "await", "awaiting_callback", provider="clearbit", step_index=0, callback_id=row.callback_id
    )
    write.write_outcomes(EXECUTOR, table, plan, [waiting], owner="worker-1")
    # The row does not wait for an answer it already has: it goes straight back to work.
    assert [(r.status, r.callback_id) for r in run_rows(run.id)] == [("pending", None)]
    run = finish_run(run.id)
    assert (run.status, run.succeeded, run.done) == ("completed", 1, 1)
    value, state = cells(table, column.id)[row.row_id]
    assert value["value"] == "Ada Lovelace" and state["status"] == "success"
    assert [a.outcome for a in attempts(run.id)] == ["hit"]
    assert [-e.amount for e in ledger(workspace.id, run.id)] == [price("clearbit.person")] == [run.credits_used]
    assert sandbox.log("clearbit") == []  # continued from the answer, never asked again
    assert service.complete_callback("clearbit", row.callback_id, _webhook(row.callback_id)) is None  # a replay


def test_a_failed_early_answer_moves_the_row_to_its_next_step(db, sandbox, clearbit_run):
    workspace, table, column, run, plan, row = clearbit_run
    assert service.complete_callback("clearbit", row.callback_id, _webhook(row.callback_id, 422)) is not None
    waiting = RowOutcome(
        row.row_id, "await", "awaiting_callback", provider="clearbit", step_index=0, callback_id=row.callback_id
    )
    write.write_outcomes(EXECUTOR, table, plan, [waiting], owner="worker-1")
    run = finish_run(run.id)
    assert (run.status, run.failed, run.credits_used) == ("completed", 1, 0)
    assert ledger(workspace.id, run.id) == []
    assert cells(table, column.id)[row.row_id][1]["message"] == "Clearbit refused the input"


def test_an_answer_for_no_waiting_row_is_refused(db, clearbit_run):
    assert service.complete_callback("clearbit", "no-such-id", _webhook("no-such-id")) is None
