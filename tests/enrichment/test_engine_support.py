"""Helpers shared by the engine and reliability tests (no tests here): tables, columns, credits."""

from __future__ import annotations

import itertools
from typing import Any

import sqlalchemy as sa

from morket.core.types import Actor, Workspace
from morket.enrichment.config import EnrichmentConfig
from morket.enrichment.models import EnrichmentAttempt, EnrichmentRun, EnrichmentRunRow
from morket.extensions import db
from morket.tables import service as tables
from morket.tables import storage
from morket.tables.models import Column, Table

PEOPLE_COLUMNS = (
    {"name": "First name", "type": "text"},
    {"name": "Last name", "type": "text"},
    {"name": "Domain", "type": "domain"},
    {"name": "Title", "type": "text"},
)
FIRST = ("Ada", "Grace", "Alan", "Edsger", "Barbara", "Donald", "Frances", "Ken", "Margaret", "Linus", "Radia")
LAST = ("Lovelace", "Hopper", "Turing", "Dijkstra", "Liskov", "Knuth", "Allen", "Thompson", "Hamilton", "Perlman")

_n = itertools.count(1)


def people_rows(count: int, *, offset: int = 0) -> list[dict[str, Any]]:
    """Deterministic people at distinct registrable domains (the sandbox finds about 70% of them)."""
    rows = []
    for i in range(offset, offset + count):
        rows.append(
            {
                "First name": FIRST[i % len(FIRST)],
                "Last name": LAST[(i // len(FIRST)) % len(LAST)],
                "Domain": f"company{i}.com",
            }
        )
    return rows


def people_table(
    workspace: Workspace, owner: Actor, count: int, *, name: str | None = None
) -> tuple[Table, dict[str, int]]:
    """A people table with ``count`` rows; returns (table, {column name: id})."""
    table = tables.create_table(workspace, owner, name or f"People {next(_n)}", columns=PEOPLE_COLUMNS)
    for start in range(0, count, 5000):
        tables.insert_rows(workspace, owner, table, people_rows(min(5000, count - start), offset=start))
    return table, {c.name: c.id for c in table.live_columns}


def enrichment_column(workspace: Workspace, owner: Actor, table: Table, ids: dict[str, int], **config: Any) -> Column:
    """Add an enrichment column (email finder by default) with the given configuration."""
    name = config.pop("name", None) or f"Email {next(_n)}"
    payload: dict[str, Any] = {
        "steps": [{"operation": "hunter.email_finder"}],
        "target": "email",
        "inputs": {"first_name": ids["First name"], "last_name": ids["Last name"], "domain": ids["Domain"]},
        "outputs": [{"field": "position", "column_id": ids["Title"]}],
    }
    payload.update(config)
    checked = EnrichmentConfig.model_validate(payload).model_dump(mode="json")
    return tables.add_column(workspace, owner, table, name, "enrichment", config=checked)


def grant(workspace: Workspace, amount: int) -> None:
    from morket.credits.service import grant as grant_credits

    grant_credits(workspace.id, amount, idempotency_key=f"test-grant:{workspace.id}:{next(_n)}")


def cells(table: Table, column_id: int) -> dict[int, tuple[Any, dict[str, Any] | None]]:
    """{row id: (cell value, cell state of the column)} read straight from the user table."""
    store = storage.storage_for(table)
    rows = store.rows
    return {
        r[0]: (r[1], (r[2] or {}).get(str(column_id)))
        for r in db.session.execute(
            sa.select(rows.c.id, store.columns[column_id], rows.c.cell_state).order_by(rows.c.id)
        )
    }


def run_rows(run_id: int) -> list[EnrichmentRunRow]:
    return list(
        db.session.scalars(
            sa.select(EnrichmentRunRow).where(EnrichmentRunRow.run_id == run_id).order_by(EnrichmentRunRow.row_id)
        )
    )


def attempts(run_id: int) -> list[EnrichmentAttempt]:
    return list(
        db.session.scalars(
            sa.select(EnrichmentAttempt).where(EnrichmentAttempt.run_id == run_id).order_by(EnrichmentAttempt.id)
        )
    )


def reload(run: EnrichmentRun) -> EnrichmentRun:
    db.session.expire_all()
    return db.session.get(EnrichmentRun, run.id)


def finish_run(run_id: int, *, rounds: int = 30) -> EnrichmentRun:
    """Work the run in this process until it is over (as its jobs would); return it."""
    from morket.enrichment import executor, service

    for _ in range(rounds):
        executor.work(run_id, 0, budget=20)
        db.session.expire_all()
        run = db.session.get(EnrichmentRun, run_id)
        if run.finished:
            return run
    raise AssertionError(f"run {run_id} did not finish: {service.run_progress(run)}")


def ledger(workspace_id: int, run_id: int | None = None) -> list[Any]:
    from morket.credits.models import LedgerEntry

    stmt = sa.select(LedgerEntry).where(LedgerEntry.workspace_id == workspace_id)
    if run_id is not None:
        stmt = stmt.where(LedgerEntry.run_id == run_id)
    return list(db.session.scalars(stmt.order_by(LedgerEntry.id)))
