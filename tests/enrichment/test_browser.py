"""In a real browser, in sandbox mode: an email waterfall over 200 people, from setup to the ledger.

Add the column (Hunter's finder, then Apollo, verified by Hunter), see the estimate, confirm and run
it, watch the progress bar move while the worker works, see the cells fill with their states, and see
the balance drop by exactly what the ledger shows for the run. A viewer cannot start runs.
"""

from __future__ import annotations

import json
import re

import pytest
from playwright.sync_api import Locator, expect
from sqlalchemy import create_engine, text

from tests.browser.conftest import browser_page, committed_owner, live_server  # noqa: F401 - the browser fixtures
from tests.factories import PASSWORD

ROWS = 200
GRANT = 5_000
FIRST = ("Ada", "Grace", "Alan", "Edsger", "Barbara", "Donald", "Frances", "Ken", "Margaret", "Linus", "Radia")
LAST = ("Lovelace", "Hopper", "Turing", "Dijkstra", "Liskov", "Knuth", "Allen", "Thompson", "Hamilton", "Perlman")


@pytest.fixture
def sandboxed(app, sandbox, monkeypatch):
    """Point the live server (settings read from the environment) and this process at the sandboxes."""
    for name in ("hunter", "apollo", "clearbit"):
        monkeypatch.setenv(f"MORKET_{name.upper()}_URL", sandbox.url(name))
        monkeypatch.setenv(f"MORKET_{name.upper()}_API_KEY", f"sandbox-{name}-key")
    # A little latency per call so that the progress bar is seen part way.
    sandbox.reset()
    sandbox.configure("hunter", latency_ms=40)
    sandbox.configure("apollo", latency_ms=40)
    yield sandbox
    sandbox.reset()


@pytest.fixture
def served(sandboxed, live_server):  # noqa: F811
    """The live server, started after the sandbox settings are in its environment."""
    return live_server


def _committed_team(app):
    from morket.credits import service as credits
    from morket.extensions import db
    from morket.tables import service as tables
    from morket.workspaces.models import Membership

    with app.app_context():
        workspace, user = committed_owner(
            email="eve@example.com", name="Eve", slug="eve-co", workspace_name="Eve Co", password=PASSWORD
        )
        _, viewer = committed_owner(
            email="vic@example.com", name="Vic", slug="vic-co", workspace_name="Vic Co", password=PASSWORD
        )
        db.session.flush()
        db.session.add(Membership(workspace_id=workspace.id, user_id=viewer.id, role="viewer"))
        credits.grant(workspace.id, GRANT, idempotency_key="browser-grant")
        table = tables.create_table(
            workspace,
            user,
            "Prospects",
            columns=[
                {"name": "First name", "type": "text"},
                {"name": "Last name", "type": "text"},
                {"name": "Domain", "type": "domain"},
            ],
        )
        rows = [
            {"First name": FIRST[i % len(FIRST)], "Last name": LAST[i % len(LAST)], "Domain": f"acct{i}.example.com"}
            for i in range(ROWS)
        ]
        tables.insert_rows(workspace, user, table, rows)
        db.session.commit()
        return workspace.id, workspace.slug, table.id


def _work(app, run_id: int, budget: float) -> None:
    """Act as the enrichment worker for ``budget`` seconds (the engine's job body, in this process)."""
    from morket.enrichment import executor

    with app.app_context():
        executor.work(run_id, 0, budget=budget)


def _ledger_spent(app, workspace_id: int, run_id: int) -> int:
    engine = create_engine(app.config["SQLALCHEMY_DATABASE_URI"])
    with engine.connect() as conn:
        spent = conn.execute(
            text("SELECT COALESCE(-SUM(amount), 0) FROM credit_ledger WHERE workspace_id = :w AND run_id = :r"),
            {"w": workspace_id, "r": run_id},
        ).scalar_one()
    engine.dispose()
    return int(spent)


def _run_status(app, run_id: int) -> str:
    engine = create_engine(app.config["SQLALCHEMY_DATABASE_URI"])
    with engine.connect() as conn:
        status = conn.execute(text("SELECT status FROM enrichment_runs WHERE id = :r"), {"r": run_id}).scalar_one()
    engine.dispose()
    return str(status)


def _runs(app, workspace_id: int) -> int:
    engine = create_engine(app.config["SQLALCHEMY_DATABASE_URI"])
    with engine.connect() as conn:
        count = conn.execute(text("SELECT count(*) FROM enrichment_runs WHERE workspace_id = :w"), {"w": workspace_id})
        found = int(count.scalar_one())
    engine.dispose()
    return found


def _login(page, base: str, email: str) -> None:
    page.goto(f"{base}/login")
    page.fill("#email", email)
    page.fill("#password", PASSWORD)
    page.click("form button[type=submit]")
    expect(page).not_to_have_url(re.compile(r"/login"))


def _number(locator: Locator) -> int:
    return int(locator.inner_text().split()[0].replace(",", ""))


@pytest.mark.browser
def test_email_waterfall_over_200_people(app, services, served, browser_page):  # noqa: F811
    workspace_id, slug, table_id = _committed_team(app)
    page, base = browser_page, served
    try:
        _login(page, base, "eve@example.com")
        page.goto(f"{base}/w/{slug}/credits")
        before = _number(page.locator("#credits-balance-value"))
        assert before == GRANT

        # Set up the waterfall on the full setup page (what the Enrich button links to without JavaScript).
        page.goto(f"{base}/w/{slug}/tables/{table_id}/enrichment/new")
        page.click("a[data-preset=email_waterfall]")
        expect(page.locator("select[name=step_1]")).to_have_value("hunter.email_finder")
        expect(page.locator("select[name=step_2]")).to_have_value("apollo.people_match")
        expect(page.locator("select[name=validation]")).to_have_value("hunter.email_verifier")
        expect(page.locator("select[name=in_domain] option[selected]")).to_have_text("Domain")
        page.select_option("select[name=out_title]", "new")
        page.fill("input[name=outname_title]", "Job title")
        page.click("#enrichment-save")
        expect(page).to_have_url(re.compile(rf"/tables/{table_id}"))
        header = page.locator(".grid-col-header", has_text="Work email")
        expect(header).to_be_visible()
        expect(page.locator(".grid-col-header", has_text="Job title")).to_be_visible()

        # The estimate, then a confirmed start. The header menu needs the grid's script: wait for the
        # page's load (a busy machine ran it late) and give the menu's fetch time to answer.
        page.wait_for_load_state("load")
        header.click(button="right")
        run_all = page.locator("button[data-enrich-scope=all]")
        expect(run_all).to_be_visible(timeout=20_000)
        run_all.click()
        estimate = page.locator("#enrichment-estimate")
        expect(estimate.locator("[data-estimate-rows]")).to_have_text("200")
        max_credits = _number(estimate.locator("[data-estimate-credits]"))
        assert max_credits > 500  # above the default threshold: a confirmation is asked
        expect(estimate.locator("[data-balance]")).to_have_text(f"{GRANT:,}")
        page.check("#enrichment-confirm")
        page.click("#enrichment-start")
        expect(page).to_have_url(re.compile(rf"/w/{slug}/runs/\d+$"))
        run_id = int(page.url.rsplit("/", 1)[1])
        progress = page.locator(f"#run-{run_id}-progress")
        expect(progress.locator("[data-done]")).to_have_text("0 of 200")

        # On the grid, the queued run shows above the cells; while the worker works a little, the
        # cells fill in place (no reload): the strip's poll refreshes the grid's window.
        page.goto(f"{base}/w/{slug}/tables/{table_id}")
        grid = page.locator(f"#table-{table_id}-grid")
        strip = page.locator(f"#table-{table_id}-runs")
        expect(strip.locator(f"[data-run-id='{run_id}']")).to_contain_text("Enriching Work email: 0 of 200")
        states = grid.locator(".grid-cell.is-success, .grid-cell.is-no_data, .grid-cell.is-error")
        expect(grid.locator(".grid-row").first).to_be_visible()
        assert states.count() == 0
        _work(app, run_id, budget=0.5)
        expect(states.first).to_be_visible(timeout=6_000)

        # The run page's bar shows the part done, then moves to the end and stops polling.
        page.goto(f"{base}/w/{slug}/runs/{run_id}")
        expect(progress).to_have_attribute("data-status", "running")
        partly = _number(progress.locator("[data-done]"))
        assert 0 < partly < 200
        for _ in range(40):
            _work(app, run_id, budget=5.0)
            if _run_status(app, run_id) == "completed":
                break
        expect(progress).to_have_attribute("data-status", "completed", timeout=5_000)
        # Polling stopped: the finished partial no longer asks to be fetched again.
        expect(progress).not_to_have_attribute("hx-trigger", "every 1s")
        expect(progress.locator("[data-remaining]")).to_have_text("0")
        used = _number(progress.locator("[data-credits-used]"))
        found = _number(progress.locator("[data-succeeded]"))
        assert 0 < found < 200

        # The cells show their values and states, with the provider in the tooltip.
        page.click("#run-open-table")
        expect(strip.locator(f"[data-run-id='{run_id}']")).to_have_count(0)
        expect(grid.locator(".grid-cell.is-queued, .grid-cell.is-running")).to_have_count(0)
        expect(grid.locator(".grid-cell.is-success").first).to_be_visible()
        expect(grid.locator(".grid-cell.is-no_data").first).to_be_visible()
        first = grid.locator(".grid-cell.is-success").first
        assert "@" in first.inner_text()
        assert re.match(r"Found · (hunter|apollo)", first.get_attribute("title"))
        # "Enrich selected rows": a right click on a cell of the column estimates just that row.
        grid.locator(".grid-cell.is-no_data").first.click(button="right")
        selected = page.locator(".columns-popover #enrichment-estimate")
        expect(selected).to_contain_text("selected rows")
        expect(selected.locator("[data-estimate-rows]")).to_have_text("1")
        page.click(".columns-popover .columns-close")
        expect(selected).to_have_count(0)

        # The balance dropped by exactly what the ledger shows for the run.
        spent = _ledger_spent(app, workspace_id, run_id)
        page.goto(f"{base}/w/{slug}/credits")
        after = _number(page.locator("#credits-balance-value"))
        assert before - after == spent == used
        assert 0 < spent <= max_credits
        expect(page.locator("#credit-ledger")).to_contain_text(f"Run #{run_id}")
        assert page.problems == []

        # A viewer sees the run but cannot start one.
        page.context.clear_cookies()
        _login(page, base, "vic@example.com")
        page.goto(f"{base}/w/{slug}/runs/{run_id}")
        expect(page.locator(f"#run-{run_id}-progress")).to_have_attribute("data-status", "completed")
        expect(page.locator("#run-cancel")).to_have_count(0)
        page.goto(f"{base}/w/{slug}/tables/{table_id}")
        expect(page.locator("a.col-enrich-btn")).to_have_count(0)
        column_id = page.locator(".grid-col-header", has_text="Work email").get_attribute("data-col-id")
        token = json.loads(page.locator("body").get_attribute("hx-headers"))["X-CSRFToken"]
        answer = page.request.post(
            f"{base}/w/{slug}/tables/{table_id}/enrichment/{column_id}/runs",
            form={"scope": "all", "confirm": "1", "csrf_token": token},
            fail_on_status_code=False,
        )
        assert answer.status == 403
        assert _runs(app, workspace_id) == 1
    finally:
        engine = create_engine(app.config["SQLALCHEMY_DATABASE_URI"])
        with engine.begin() as conn:
            for (name,) in conn.execute(text("SELECT tablename FROM pg_tables WHERE schemaname = 'ut'")).all():
                conn.execute(text(f"DROP TABLE ut.{name}"))
            conn.execute(text("TRUNCATE tables CASCADE"))
        engine.dispose()
