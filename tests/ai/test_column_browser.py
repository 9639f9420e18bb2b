"""In a real browser, in sandbox mode: an AI column classifying 500 companies into one of six industries.

From the table's Enrich drawer (the catalogue's "AI" card) to the setup page; try on 5 rows (prompts,
answers, cost); the estimate; a run with a budget below the estimate stops at the budget with the rest
of the cells queued; raising the budget lets it finish. Every cell is one of the six (or an error with
its reason), and the credits charged equal the ledger and the sandbox's own usage at the configured
prices.
"""

from __future__ import annotations

import math
import re
from pathlib import Path

import pytest
import sqlalchemy as sa
from playwright.sync_api import expect
from sqlalchemy import create_engine, text

from tests.ai.column_support import INDUSTRIES, MODEL, asks, company_rows
from tests.ai.test_column_runs import enum_answer
from tests.browser.conftest import browser_page, committed_owner, live_server  # noqa: F401 - the browser fixtures
from tests.factories import PASSWORD

ROWS = 500
GRANT = 100_000
SCREENSHOTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "screenshots"


@pytest.fixture
def sandboxed(app, sandbox_server, monkeypatch):
    """The live server (settings from the environment) and this process on the sandbox LLM."""
    values = {"AI_KIND": "openai", "AI_BASE_URL": sandbox_server.url("openai") + "/v1",
              "AI_API_KEY": "sandbox-platform-key", "AI_MODEL": MODEL}  # fmt: skip
    for name, value in values.items():
        monkeypatch.setenv(f"MORKET_{name}", value)
        monkeypatch.setitem(app.config["MORKET"], name, value)
    monkeypatch.setitem(app.config["MORKET"], "ENRICHMENT_BACKOFF_SECONDS", 0.05)
    sandbox_server.reset()
    yield sandbox_server
    sandbox_server.reset()


@pytest.fixture
def served(sandboxed, live_server):  # noqa: F811
    return live_server


def _committed_team(app):
    from morket.credits import service as credits
    from morket.extensions import db
    from morket.tables import service as tables

    with app.app_context():
        workspace, user = committed_owner(email="ada@example.com", name="Ada", slug="ada-co",
                                          workspace_name="Ada Co", password=PASSWORD)  # fmt: skip
        credits.grant(workspace.id, GRANT, idempotency_key="browser-ai-grant")
        table = tables.create_table(workspace, user, "Companies", columns=[
            {"name": "Description", "type": "text"}, {"name": "Company", "type": "text"}])  # fmt: skip
        tables.insert_rows(workspace, user, table, company_rows(ROWS))
        db.session.commit()
        return workspace.id, workspace.slug, table.id


def _sql(app, statement: str, **params):
    engine = create_engine(app.config["SQLALCHEMY_DATABASE_URI"])
    with engine.connect() as conn:
        rows = conn.execute(text(statement), params).all()
    engine.dispose()
    return rows


def _work_until(app, run_id: int, done) -> None:
    """Act as the worker (the job body, in this process) until ``done(status, reason)``."""
    from morket.ai import executor

    for _ in range(60):
        with app.app_context():
            executor.work(run_id, 0, budget=10)
        status, reason = _sql(app, "SELECT status, pause_reason FROM enrichment_runs WHERE id = :r", r=run_id)[0]
        if done(status, reason or ""):
            return
    raise AssertionError(f"run {run_id} did not get there: {status} {reason}")


def _number(text_: str) -> int:
    return int(text_.split()[0].replace(",", ""))


@pytest.mark.browser
def test_ai_column_classifies_500_companies_within_its_budget(app, services, sandboxed, served, browser_page):  # noqa: F811
    workspace_id, slug, table_id = _committed_team(app)
    page, base = browser_page, served
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.set_viewport_size({"width": 1366, "height": 900})
    page.goto(f"{base}/login")
    page.fill("#email", "ada@example.com")
    page.fill("#password", PASSWORD)
    page.click("form button[type=submit]")
    expect(page).not_to_have_url(re.compile(r"/login"))

    # Found where enrichments are: the table's Enrich drawer offers an "AI" card.
    page.goto(f"{base}/w/{slug}/tables/{table_id}")
    page.wait_for_load_state("load")
    page.click("#enrich-open")
    card = page.locator("#enrich-ai-link")
    expect(card).to_be_visible(timeout=20_000)
    page.screenshot(path=str(SCREENSHOTS / "ai-catalogue-card.png"))
    card.click()
    # The card opens the AI column's setup in the drawer; temperature, length and the system prompt
    # are on its full page, which this test fills.
    expect(page.locator("#enrich-drawer #ai-panel-form")).to_be_visible()
    page.click("#ai-panel-full")
    expect(page).to_have_url(re.compile(rf"/tables/{table_id}/ai/new$"))

    page.fill("input[name=name]", "Industry")
    page.fill("#ai-prompt", "Which industry is this company in? {{Description}} (name: {{Company}})")
    page.fill("textarea[name=system]", "You classify companies.")
    page.select_option("#ai-output-type", "choice")
    page.fill("#ai-options", "\n".join(INDUSTRIES))
    page.fill("input[name=max_tokens]", "64")
    page.click("#ai-save")
    expect(page).to_have_url(re.compile(rf"/tables/{table_id}/ai/\d+$"))
    column_id = int(page.url.rsplit("/", 1)[1])

    # Try on 5 rows: the prompts sent, the answers, what each cost.
    page.click("#ai-try")
    samples = page.locator("#ai-samples tbody tr")
    expect(samples).to_have_count(5)
    for i in range(5):
        answer = samples.nth(i).locator("[data-answer]").inner_text().strip()
        assert answer in INDUSTRIES, answer
    expect(samples.first.locator(".ai-prompt")).to_contain_text("<data>")
    tried = _number(page.locator("#ai-try-total strong").inner_text())
    assert tried > 0
    estimate = _number(page.locator("#ai-estimate [data-estimate]").inner_text())
    assert estimate >= ROWS  # the sandbox model is dear on purpose: at least a credit a row
    page.screenshot(path=str(SCREENSHOTS / "ai-try-5-rows.png"), full_page=True)

    # A budget below the estimate: the run stops there, the rest queued and said so.
    budget = estimate // 3
    page.fill("#ai-budget", str(budget))
    page.click("#ai-run")
    expect(page).to_have_url(re.compile(r"#runs$"))
    run_id = _sql(app, "SELECT id FROM enrichment_runs WHERE column_id = :c", c=column_id)[0][0]
    _work_until(app, run_id, lambda status, reason: status == "paused" and reason.startswith("Stopped:"))
    page.reload()
    page.wait_for_load_state("load")
    run = page.locator(f"#ai-run-{run_id}")
    expect(run.locator("[data-run-status]")).to_have_text("stopped at budget")
    expect(run.locator("[data-run-reason]")).to_contain_text(f"budget of {budget:,} credits is spent")
    used = _number(run.locator("[data-credits-used]").inner_text())
    queued = _number(run.locator("[data-queued]").inner_text())
    assert 0 < used <= budget and used >= budget - 20
    assert 0 < queued < ROWS
    page.screenshot(path=str(SCREENSHOTS / "ai-run-stopped-at-budget.png"), full_page=True)
    states = dict(_sql(app, "SELECT status, count(*) FROM enrichment_run_rows WHERE run_id = :r GROUP BY status",
                       r=run_id))  # fmt: skip
    assert states.get("pending") == queued

    # Raised: it goes on from the queued rows and finishes.
    page.fill(f"#ai-run-{run_id} input[name=budget_credits]", str(GRANT))
    page.click(f"#ai-run-{run_id} .ai-raise button")
    _work_until(app, run_id, lambda status, reason: status == "completed")
    page.reload()
    expect(run.locator("[data-run-status]")).to_have_text("completed")
    expect(run.locator("[data-succeeded]")).to_have_text(f"{ROWS:,}")
    final = _number(run.locator("[data-credits-used]").inner_text())

    # Every cell is one of the six or an error with its reason.
    from morket.extensions import db
    from morket.tables import service as tables
    from morket.tables import storage

    with app.app_context():
        from morket.workspaces.models import Workspace

        table = tables.get_table_or_404(db.session.get(Workspace, workspace_id), table_id)
        rows = storage.storage_for(table).rows
        col = storage.storage_for(table).columns[column_id]
        cells = db.session.execute(sa.select(col, rows.c.cell_state)).all()
        db.session.rollback()
    assert len(cells) == ROWS
    for value, state in cells:
        mine = (state or {}).get(str(column_id), {})
        assert value in INDUSTRIES or (mine.get("status") == "error" and mine.get("message")), (value, mine)

    # Credits: the run's counter, the ledger and the sandbox's own usage at the configured prices agree.
    spent = "SELECT COALESCE(-SUM(amount), 0) FROM credit_ledger WHERE workspace_id = :w AND provider = 'ai'"
    ledger = _sql(app, spent, w=workspace_id)[0][0]
    assert final + tried == int(ledger)
    sent = asks(sandboxed)
    # Every row asked once: the five tried were paid by the try and the run found them in the cache.
    assert len(sent) == ROWS and len({a["prompt"] for a in sent}) == ROWS
    from morket.credits.prices import model_cost

    usage = sum(model_cost(a["model"], math.ceil(len(a["system"] + a["prompt"]) / 4),
                           math.ceil(len(enum_answer(a)) / 4)) for a in sent)  # fmt: skip
    assert usage == int(ledger)

    page.goto(f"{base}/w/{slug}/tables/{table_id}")
    page.wait_for_load_state("load")
    header = page.locator(".grid-col-header", has_text="Industry")
    expect(header).to_be_visible()
    page.screenshot(path=str(SCREENSHOTS / "ai-grid-industry.png"))
