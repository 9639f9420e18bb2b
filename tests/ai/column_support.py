"""Shared helpers of the AI column tests: a companies table, the sandbox LLM as the platform default,
working a run in process, and the sandbox's own record of what it was asked."""

from __future__ import annotations

import itertools
import math
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from morket.ai import column_runs, columns, executor
from morket.credits.prices import model_cost
from morket.extensions import db
from morket.runs.models import Run
from morket.tables import service as tables
from morket.tables import storage

INDUSTRIES = ("Software", "Retail", "Finance", "Healthcare", "Energy", "Logistics")
MODEL = "sandbox-small"
_n = itertools.count(1)


@pytest.fixture
def ai(app, sandbox_server, monkeypatch):
    """The platform default endpoint on the sandbox's OpenAI API, quick retries, a fresh sandbox."""
    settings = app.config["MORKET"]
    monkeypatch.setitem(settings, "AI_KIND", "openai")
    monkeypatch.setitem(settings, "AI_BASE_URL", sandbox_server.url("openai") + "/v1")
    monkeypatch.setitem(settings, "AI_API_KEY", "sandbox-platform-key")
    monkeypatch.setitem(settings, "AI_MODEL", MODEL)
    monkeypatch.setitem(settings, "AI_MODELS", ["sandbox-large"])
    monkeypatch.setitem(settings, "ENRICHMENT_BACKOFF_SECONDS", 0.05)
    sandbox_server.reset()
    yield sandbox_server
    sandbox_server.reset()


def company_rows(count: int, *, offset: int = 0, extra: dict[int, str] | None = None) -> list[dict[str, Any]]:
    """Companies whose description names their industry (every seventh names none)."""
    rows = []
    for i in range(offset, offset + count):
        industry = INDUSTRIES[i % len(INDUSTRIES)]
        text = f"A {industry.lower()} company from town {i}" if i % 7 else f"A firm from town {i}"
        rows.append({"Company": f"Company {i}", "Description": (extra or {}).get(i, text)})
    return rows


def companies_table(workspace, owner, count: int, **kwargs: Any):
    specs = [{"name": "Description", "type": "text"}, {"name": "Company", "type": "text"}]
    table = tables.create_table(workspace, owner, f"Companies {next(_n)}", columns=specs)
    for start in range(0, count, 5000):
        tables.insert_rows(workspace, owner, table, company_rows(min(5000, count - start), offset=start, **kwargs))
    return table


def industry_column(workspace, owner, table, **over: Any):
    setup = {
        "name": "Industry",
        "prompt": "Which industry is this company in? {{Description}} (name: {{Company}})",
        "system": "You classify companies.",
        "output_type": "choice",
        "options": list(INDUSTRIES),
        "max_tokens": 64,
        **over,
    }
    return columns.create_ai_column(workspace, owner, table, columns.parse_setup(setup))


def finish(run_id: int, *, rounds: int = 40) -> Run:
    """Work the run in this process until it is over or stopped (as its jobs would)."""
    for _ in range(rounds):
        executor.work(run_id, 0, budget=20)
        db.session.expire_all()
        run = db.session.get(Run, run_id)
        if run.finished or column_runs.stopped_at_budget(run):
            return run
    raise AssertionError(f"run {run_id} did not finish: {column_runs.progress(run)}")


def cells(table, column_id: int) -> dict[int, tuple[Any, dict[str, Any] | None]]:
    store = storage.storage_for(table)
    col = store.columns[column_id]
    return {
        r[0]: (r[1], (r[2] or {}).get(str(column_id)))
        for r in db.session.execute(sa.select(store.rows.c.id, col, store.rows.c.cell_state))
    }


def asks(server) -> list[dict[str, Any]]:
    """What the sandbox LLM was asked (its own record)."""
    resp = httpx.get(f"{server.base}/_sandbox/openai/asks", timeout=5)
    resp.raise_for_status()
    return resp.json()


def sandbox_usage_credits(server, answer_for) -> int:
    """The credits the sandbox's own usage rule gives for every ask it logged, at the configured prices.

    Usage per the sandbox: input = ceil(len(system + prompt) / 4), output = ceil(len(answer) / 4); the
    answer of an enum schema is ``{"value": <option>}`` as ``json.dumps`` writes it.
    """
    total = 0
    for ask in asks(server):
        answer = answer_for(ask)
        total += model_cost(ask["model"], math.ceil(len(ask["system"] + ask["prompt"]) / 4), math.ceil(len(answer) / 4))
    return total


def ledger_total(workspace_id: int) -> int:
    from morket.credits.models import LedgerEntry

    return int(
        db.session.scalar(
            sa.select(sa.func.coalesce(sa.func.sum(-LedgerEntry.amount), 0)).where(
                LedgerEntry.workspace_id == workspace_id, LedgerEntry.provider == "ai"
            )
        )
        or 0
    )
