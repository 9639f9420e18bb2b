"""In a real browser, in sandbox mode: the issue's path from a table with "Name" and "Company domain".

Open the panel from the toolbar, choose "Work email", check the inputs resolved for the first 3 rows,
save, run on the first 10 rows: emails appear in a typed Email column, a cell's detail names the
provider that delivered it, and the balance moves by exactly the ledger's amount. The whole path is
at most 6 clicks and no typing; the panel does not scroll sideways at 1366 px and axe-core finds no
serious or critical violation in it.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from playwright.sync_api import Locator, Page, expect
from sqlalchemy import create_engine, text

from tests.browser.conftest import browser_page, committed_owner, live_server  # noqa: F401 - the browser fixtures
from tests.factories import PASSWORD

ROWS = 30
GRANT = 1_000
PEOPLE = ("Ada Lovelace", "Grace Hopper", "Alan Turing", "Edsger Dijkstra", "Barbara Liskov", "Donald Knuth")
ROOT = Path(__file__).resolve().parents[2]
SCREENSHOTS = Path(os.environ.get("MORKET_SCREENSHOT_DIR", ROOT / "test-artifacts" / "screenshots"))


@pytest.fixture
def sandboxed(app, sandbox, monkeypatch):
    """Point the live server and this process at the provider sandboxes."""
    for name in ("hunter", "apollo", "clearbit"):
        monkeypatch.setenv(f"MORKET_{name.upper()}_URL", sandbox.url(name))
        monkeypatch.setenv(f"MORKET_{name.upper()}_API_KEY", f"sandbox-{name}-key")
    sandbox.reset()
    yield sandbox
    sandbox.reset()


@pytest.fixture
def served(sandboxed, live_server):  # noqa: F811
    return live_server


def _committed_table(app) -> tuple[int, str, int]:
    from morket.credits import service as credits
    from morket.extensions import db
    from morket.tables import service as tables

    with app.app_context():
        workspace, user = committed_owner(
            email="nina@example.com", name="Nina", slug="nina-co", workspace_name="Nina Co", password=PASSWORD
        )
        credits.grant(workspace.id, GRANT, idempotency_key="panel-grant")
        table = tables.create_table(
            workspace,
            user,
            "Leads",
            columns=[{"name": "Name", "type": "text"}, {"name": "Company domain", "type": "domain"}],
        )
        rows = [{"Name": PEOPLE[i % len(PEOPLE)], "Company domain": f"acct{i}.example.com"} for i in range(ROWS)]
        tables.insert_rows(workspace, user, table, rows)
        db.session.commit()
        return workspace.id, workspace.slug, table.id


def _scalar(app: Flask, sql: str, **params: Any) -> int:
    engine = create_engine(app.config["SQLALCHEMY_DATABASE_URI"])
    with engine.connect() as conn:
        found = conn.execute(text(sql), params).scalar_one()
    engine.dispose()
    return int(found)


def _work_until_done(app, run_id: int) -> None:
    from morket.enrichment import executor

    for _ in range(40):
        with app.app_context():
            executor.work(run_id, 0, budget=5.0)
        status = _scalar(app, "SELECT status = 'completed' FROM enrichment_runs WHERE id = :r", r=run_id)
        if status:
            return
    raise AssertionError("the run did not complete")


def _number(locator: Locator) -> int:
    return int(locator.inner_text().split()[0].replace(",", ""))


def _no_sideways_scroll(page: Page) -> None:
    width = page.evaluate("[document.documentElement.scrollWidth, document.documentElement.clientWidth]")
    assert width[0] <= width[1] + 1, f"the page scrolls sideways: {width}"
    drawer = page.evaluate("(d => [d.scrollWidth, d.clientWidth])(document.getElementById('enrich-drawer'))")
    assert drawer[0] <= drawer[1] + 1, f"the panel scrolls sideways: {drawer}"


def _axe(page: Page) -> list[str] | None:
    """Serious and critical axe-core violations inside the drawer, or None when the helper is absent."""
    try:
        from tests.support.axe import severe_violations
    except ImportError:
        return None
    return severe_violations(page, within="#enrich-drawer")


def _shot(page: Page, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"enrichment-panel-{name}.png"))


@pytest.mark.browser
def test_work_email_from_a_name_and_a_domain_in_six_clicks(app, services, served, browser_page):  # noqa: F811
    workspace_id, slug, table_id = _committed_table(app)
    page, base = browser_page, served
    clicks = 0
    try:
        page.set_viewport_size({"width": 1366, "height": 768})
        page.goto(f"{base}/login")
        page.fill("#email", "nina@example.com")
        page.fill("#password", PASSWORD)
        page.click("form button[type=submit]")
        expect(page).not_to_have_url(re.compile(r"/login"))
        page.goto(f"{base}/w/{slug}/tables/{table_id}")
        grid = page.locator(f"#table-{table_id}-grid")
        expect(grid.locator(".grid-row").first).to_be_visible()

        # 1. The toolbar's Enrich button opens the catalogue beside the grid.
        page.click("#enrich-open")
        clicks += 1
        drawer = page.locator("#enrich-drawer")
        card = drawer.locator("[data-card='preset:email_waterfall']")
        expect(card).to_be_visible()
        expect(card.locator("[data-price]")).to_contain_text("3 credits")
        expect(grid).to_be_visible()  # the table stays in view beside the panel
        _no_sideways_scroll(page)
        _shot(page, "1-catalogue")

        # 2. Choose "Work email": the inputs are resolved for the first 3 rows before anything runs.
        card.locator("a.enrich-card-link").click()
        clicks += 1
        preview = drawer.locator("#enrich-preview")
        expect(preview.locator("tbody tr")).to_have_count(3)
        expect(preview.locator("td[data-input=first_name]")).to_have_text(["Ada", "Grace", "Alan"])
        expect(preview.locator("td[data-input=last_name]")).to_have_text(["Lovelace", "Hopper", "Turing"])
        expect(preview.locator("td[data-input=domain]").first).to_have_text("example.com")
        expect(drawer.locator("td[data-input=organization_name]")).to_have_count(0)
        expect(drawer.locator("#enrich-missing")).to_have_count(0)
        _no_sideways_scroll(page)
        _shot(page, "2-setup")
        violations = _axe(page)
        if violations is not None:
            assert violations == []

        # 3. Save: the grid shows the new columns, the panel offers the first 10 rows at once.
        drawer.locator("#enrich-save").click()
        clicks += 1
        email_header = grid.locator(".grid-col-header[data-col-type=email]", has_text="Email")
        expect(email_header).to_be_visible()
        expect(grid.locator(".grid-col-header[data-col-type=enrichment]", has_text="Work email")).to_be_visible()
        run_first = drawer.locator("#enrich-run-first")
        expect(run_first).to_have_text("Run on the first 10 rows")
        expect(drawer.locator("[data-rows=first] [data-estimate-credits]")).to_have_text("30")
        before = _number(drawer.locator("[data-balance]"))
        assert before == GRANT
        _no_sideways_scroll(page)
        _shot(page, "3-run-choices")

        # 4. Run on the first 10 rows; a worker works; emails appear in the typed Email column.
        run_first.click()
        clicks += 1
        expect(drawer.locator(".enrichment-progress")).to_be_visible()
        run_id = _scalar(app, "SELECT max(id) FROM enrichment_runs WHERE workspace_id = :w", w=workspace_id)
        assert _scalar(app, "SELECT total FROM enrichment_runs WHERE id = :r", r=run_id) == 10
        _work_until_done(app, run_id)
        email_id = email_header.get_attribute("data-col-id")
        emails = grid.locator(f".grid-cell[data-col-id='{email_id}']", has_text="@")
        expect(emails.first).to_be_visible(timeout=10_000)
        expect(drawer.locator(".enrichment-progress")).to_have_attribute("data-status", "completed", timeout=5_000)
        # The run shows the balance as it is now, not as it was when the drawer opened.
        drawer_balance = _number(drawer.locator(".enrichment-progress [data-live-balance]"))
        _shot(page, "4-run-done")

        # 5. A cell's detail names the provider that delivered it and every attempt.
        found = grid.locator(".grid-cell.t-enrichment.is-success").first
        found.click()
        clicks += 1
        detail = drawer.locator(".enrichment-cell-attempts")
        expect(detail.locator("[data-delivered-by]")).to_contain_text(re.compile("Hunter|Apollo"))
        expect(detail.locator("[data-attempt]").first).to_be_visible()
        _no_sideways_scroll(page)
        _shot(page, "5-cell-detail")

        # The same panel opens from the column's header: its run control and its menu.
        work_header = grid.locator(".grid-col-header[data-col-type=enrichment]", has_text="Work email")
        work_header.locator(".enrich-run-btn").click()
        expect(drawer.locator("#enrich-column #enrich-run-rest")).to_be_visible()
        page.keyboard.press("Escape")
        work_header.click(button="right")
        page.locator(".columns-popover .enrichment-menu a", has_text="Edit enrichment").click()
        expect(drawer.locator("#enrich-edit")).to_be_visible()
        expect(page.locator(".columns-popover")).to_be_hidden()

        # The balance moved by exactly what the ledger shows for the run.
        spent = _scalar(
            app,
            "SELECT COALESCE(-SUM(amount), 0) FROM credit_ledger WHERE workspace_id = :w AND run_id = :r",
            w=workspace_id,
            r=run_id,
        )
        page.goto(f"{base}/w/{slug}/credits")
        after = _number(page.locator("#credits-balance-value"))
        assert drawer_balance == after
        assert 0 < spent <= 30
        assert before - after == spent
        assert clicks <= 6
        assert page.problems == []
    finally:
        engine = create_engine(app.config["SQLALCHEMY_DATABASE_URI"])
        with engine.begin() as conn:
            for (name,) in conn.execute(text("SELECT tablename FROM pg_tables WHERE schemaname = 'ut'")).all():
                conn.execute(text(f"DROP TABLE ut.{name}"))
            conn.execute(text("TRUNCATE tables CASCADE"))
        engine.dispose()
