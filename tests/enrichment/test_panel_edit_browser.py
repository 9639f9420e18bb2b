"""In a real browser: an HTTP-request column written in the drawer and run on 10 rows against a loopback API,
and a Hunter/Apollo waterfall reordered in the drawer from the column's header menu, with the keyboard.

Both check the drawer in each state for sideways scroll at 1366 px and serious axe-core violations, and
save screenshots. The loopback API is allowed by the test-only ``SCRAPE_ALLOWLIST`` (host and port), for
the live server (its environment) and for the run this process works (its app's settings).
"""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Page, expect
from sqlalchemy import create_engine, text

from tests.browser.conftest import browser_page, committed_owner, live_server  # noqa: F401 - the browser fixtures
from tests.enrichment.test_panel_browser import _axe, _no_sideways_scroll, _scalar, _shot, _work_until_done
from tests.factories import PASSWORD
from tests.providers.test_http_request import JsonApi

ROWS = 12


@pytest.fixture
def json_api(app, monkeypatch):
    """A JSON API on loopback that the live server and this process's runs may call."""
    api = JsonApi()
    allowed = f"127.0.0.1:{api.port}"
    monkeypatch.setenv("MORKET_SCRAPE_ALLOWLIST", allowed)
    settings = app.config["MORKET"]
    before = settings.get("SCRAPE_ALLOWLIST")
    settings["SCRAPE_ALLOWLIST"] = [allowed]
    yield api
    settings["SCRAPE_ALLOWLIST"] = before
    api.server.shutdown()


@pytest.fixture
def served(json_api, live_server):  # noqa: F811 - the API's allowlist is set before the live server starts
    return live_server


def _committed(app, columns: list[dict], rows: list[dict], *, waterfall: bool = False) -> tuple[str, int, int | None]:
    from morket.extensions import db
    from morket.tables import service as tables

    with app.app_context():
        workspace, user = committed_owner(
            email="omar@example.com", name="Omar", slug="omar-co", workspace_name="Omar Co", password=PASSWORD
        )
        table = tables.create_table(workspace, user, "Accounts", columns=columns)
        tables.insert_rows(workspace, user, table, rows)
        column_id = None
        if waterfall:
            from morket.enrichment import columns as enrichment_columns
            from morket.enrichment.schemas import ColumnSetup

            ids = {c.name: c.id for c in table.live_columns}
            setup = ColumnSetup.model_validate(
                {
                    "name": "Work email",
                    "steps": [{"operation": "hunter.email_finder"}, {"operation": "apollo.people_match"}],
                    "target": "email",
                    "inputs": {"domain": ids["Company domain"], "first_name": ids["Name"], "last_name": ids["Name"]},
                    "derive": {"first_name": "first_name", "last_name": "last_name"},
                }
            )
            column_id = enrichment_columns.create_enrichment_column(workspace, user, table, setup).id
        db.session.commit()
        return workspace.slug, table.id, column_id


def _login(page: Page, base: str) -> None:
    page.set_viewport_size({"width": 1366, "height": 768})
    page.goto(f"{base}/login")
    page.fill("#email", "omar@example.com")
    page.fill("#password", PASSWORD)
    page.click("form button[type=submit]")
    expect(page).not_to_have_url(re.compile(r"/login"))


def _check(page: Page, name: str) -> None:
    _no_sideways_scroll(page)
    _shot(page, name)
    violations = _axe(page)
    # axe-core leaves empty style attributes on the inputs it measured; a later clone of one is then
    # reported as an inline style under the page's CSP. Remove what the checker left, not what the page did.
    page.evaluate("document.querySelectorAll('[style=\"\"]').forEach(e => e.removeAttribute('style'))")
    if violations is not None:
        assert violations == [], name


def _cleanup(app) -> None:
    engine = create_engine(app.config["SQLALCHEMY_DATABASE_URI"])
    with engine.begin() as conn:
        for (name,) in conn.execute(text("SELECT tablename FROM pg_tables WHERE schemaname = 'ut'")).all():
            conn.execute(text(f"DROP TABLE ut.{name}"))
        conn.execute(text("TRUNCATE tables, scrape_requests, provider_credentials CASCADE"))
    engine.dispose()


@pytest.mark.browser
def test_an_http_column_written_in_the_drawer_runs_on_ten_rows(app, services, json_api, served, browser_page):  # noqa: F811
    rows = [{"Name": f"Account {i}", "Website": f"acct{i}.example.com"} for i in range(ROWS)]
    slug, table_id, _ = _committed(app, [{"name": "Name", "type": "text"}, {"name": "Website", "type": "text"}], rows)
    page, base = browser_page, served
    try:
        _login(page, base)
        page.goto(f"{base}/w/{slug}/tables/{table_id}")
        grid = page.locator(f"#table-{table_id}-grid")
        expect(grid.locator(".grid-row").first).to_be_visible()
        page.click("#enrich-open")
        drawer = page.locator("#enrich-drawer")
        drawer.locator("[data-card='op:http.request'] a.enrich-card-link").click()
        expect(drawer.locator("#enrich-http")).to_be_visible()
        _check(page, "http-1-empty")

        # The URL, then the Website column picked into it (not typed).
        drawer.locator("#enrich-http-url").fill(f"http://127.0.0.1:{json_api.port}/companies?domain=")
        drawer.locator("#enrich-insert-column").select_option(label="Website")
        drawer.locator("#enrich-insert").click()
        expect(drawer.locator("#enrich-http-url")).to_have_value(re.compile(r"domain=\{\{website\}\}$"))
        preview = drawer.locator("#enrich-http-preview")
        expect(preview.locator("[data-http-line]")).to_have_text(
            f"GET http://127.0.0.1:{json_api.port}/companies?domain=acct0.example.com"
        )
        # Saving with nothing to keep is refused with the reason, in the drawer.
        drawer.locator("#enrich-http-save").click()
        expect(drawer.locator("#enrich-error")).to_contain_text("Name the field to keep")
        expect(drawer.locator("#enrich-http-url")).to_have_value(re.compile(r"domain=\{\{website\}\}$"))
        page.problems[:] = [p for p in page.problems if not p.startswith("422 ")]  # the refusal itself
        drawer.locator("#enrich-out-field").fill("company")
        drawer.locator("#enrich-out-path").fill("$.company.name")
        drawer.locator("#enrich-http-test").click()
        result = drawer.locator("#enrich-http-test-result")
        expect(result.locator("[data-test-status]")).to_have_text("HTTP 200")
        expect(result.locator("[data-test-value]")).to_have_text("Acct0")
        _check(page, "http-2-preview-and-test")

        drawer.locator("#enrich-http-save").click()
        company = grid.locator(".grid-col-header", has_text="Company")
        expect(company.first).to_be_visible()
        run_first = drawer.locator("#enrich-run-first")
        expect(run_first).to_have_text("Run on the first 10 rows")
        _check(page, "http-3-run-choices")
        run_first.click()
        expect(drawer.locator(".enrichment-progress")).to_be_visible()
        run_id = _scalar(app, "SELECT max(id) FROM enrichment_runs")
        assert _scalar(app, "SELECT total FROM enrichment_runs WHERE id = :r", r=run_id) == 10
        _work_until_done(app, run_id)
        column_id = company.first.get_attribute("data-col-id")
        values = grid.locator(f".grid-cell[data-col-id='{column_id}']", has_text="Acct")
        expect(values.first).to_be_visible(timeout=10_000)
        expect(grid.locator(f".grid-cell[data-col-id='{column_id}']", has_text="Acct9")).to_be_visible()
        _check(page, "http-4-values")
        # The API saw the ten rows' domains (the test send was the eleventh request).
        sent = [r["args"].get("domain") for r in json_api.received if r["path"] == "/companies"]
        assert sorted(sent[1:]) == sorted(f"acct{i}.example.com" for i in range(10))
        assert page.problems == []
    finally:
        _cleanup(app)


@pytest.mark.browser
def test_a_waterfall_is_reordered_in_the_drawer_from_the_header_menu(app, services, live_server, browser_page):  # noqa: F811
    rows = [{"Name": "Ada Lovelace", "Company domain": f"acct{i}.example.com"} for i in range(5)]
    slug, table_id, column_id = _committed(
        app, [{"name": "Name", "type": "text"}, {"name": "Company domain", "type": "domain"}], rows, waterfall=True
    )
    page, base = browser_page, live_server
    try:
        _login(page, base)
        page.goto(f"{base}/w/{slug}/tables/{table_id}")
        grid = page.locator(f"#table-{table_id}-grid")
        header = grid.locator(".grid-col-header[data-col-type=enrichment]", has_text="Work email")
        expect(header).to_be_visible()
        header.click(button="right")
        page.locator(".columns-popover .enrichment-menu a", has_text="Edit enrichment").click()
        drawer = page.locator("#enrich-drawer")
        steps = drawer.locator("#enrich-steps li.enrich-step")
        expect(steps).to_have_count(2)
        expect(drawer.locator("#enrich-edit-note")).to_contain_text("apply to the next run")
        expect(drawer.locator("#enrich-preview td[data-input=first_name]").first).to_have_text("Ada")
        assert [s.get_attribute("data-step") for s in steps.all()] == ["hunter.email_finder", "apollo.people_match"]
        _check(page, "edit-1-open")

        # Another column for an input: the first rows' values follow at once, nothing is saved.
        drawer.locator("#enrich-in-first_name").select_option(label="Name")
        expect(drawer.locator("#enrich-preview td[data-input=first_name]").first).to_have_text("Ada Lovelace")
        drawer.locator("#enrich-in-first_name").select_option(label="first name of Name")
        expect(drawer.locator("#enrich-preview td[data-input=first_name]").first).to_have_text("Ada")

        # With the keyboard: focus "Move … up" on the second step and press Enter.
        up = steps.nth(1).get_by_role("button", name=re.compile(r"^Move .* up$"))
        up.focus()
        page.keyboard.press("Enter")
        expect(steps.first).to_have_attribute("data-step", "apollo.people_match")
        expect(steps.nth(1)).to_have_attribute("data-step", "hunter.email_finder")
        # The moved step keeps the keyboard's place.
        expect(steps.first).to_be_focused()
        _check(page, "edit-2-reordered")

        drawer.locator("#enrich-edit-save").click()
        expect(drawer.locator("#enrich-column")).to_be_visible()
        engine = create_engine(app.config["SQLALCHEMY_DATABASE_URI"])
        with engine.connect() as conn:
            config = conn.execute(text("SELECT config FROM table_columns WHERE id = :c"), {"c": column_id}).scalar_one()
        engine.dispose()
        assert [s["operation"] for s in config["steps"]] == ["apollo.people_match", "hunter.email_finder"]
        assert page.problems == []
    finally:
        _cleanup(app)
