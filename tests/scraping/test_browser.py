"""In a real browser: a 'Scrape website' column over 50 companies whose sites are served locally.

Add the column from the grid, run it, and see the cells fill with each site's own name and the
description land in a mapped column. The engine and the scrape worker run in this process between
page checks (the engine's job body, then a burst of the scrape queue), as their workers would.
The local sites' request log is the independent record: every site was read once.
"""

from __future__ import annotations

import re
from concurrent.futures import ThreadPoolExecutor

import pytest
from playwright.sync_api import expect
from sqlalchemy import create_engine, text

from tests.browser.conftest import browser_page, committed_owner, live_server  # noqa: F401 - the browser fixtures
from tests.factories import PASSWORD
from tests.scraping.sites import company_name

COMPANIES = 50


def _committed_team(app, sites):
    from morket.credits import service as credits
    from morket.extensions import db
    from morket.tables import service as tables

    with app.app_context():
        workspace, user = committed_owner(
            email="sam@example.com", name="Sam", slug="sam-co", workspace_name="Sam Co", password=PASSWORD
        )
        db.session.flush()
        credits.grant(workspace.id, 500, idempotency_key="scrape-browser-grant")
        table = tables.create_table(
            workspace, user, "Accounts", columns=[{"name": "Account", "type": "text"}, {"name": "Site", "type": "text"}]
        )
        rows = [{"Account": f"Account {i}", "Site": sites.url(f"co-{i}.test")} for i in range(COMPANIES)]
        tables.insert_rows(workspace, user, table, rows)
        db.session.commit()
        return workspace.id, workspace.slug, table.id


def _run_status(app, run_id: int) -> str:
    engine = create_engine(app.config["SQLALCHEMY_DATABASE_URI"])
    with engine.connect() as conn:
        status = conn.execute(text("SELECT status FROM enrichment_runs WHERE id = :r"), {"r": run_id}).scalar_one()
    engine.dispose()
    return str(status)


def _scrape_burst(app, services) -> None:
    """The scrape worker: run what the scrape queue holds (in its own thread: see ``scrape_thread``)."""
    from redis import Redis
    from rq import Queue
    from rq.job import Job

    from morket.core.jobs import QUEUE_SCRAPE

    # RQ's workers install signal handlers, which only the main thread may: take the jobs directly.
    conn = Redis.from_url(services["redis"])
    queue = Queue(QUEUE_SCRAPE, connection=conn)
    with app.app_context():
        while (job_id := conn.lpop(queue.key)) is not None:
            job = Job.fetch(job_id.decode(), connection=conn)
            job.func(*job.args, **job.kwargs)
    conn.close()


@pytest.fixture
def scrape_thread():
    """One thread for the scrape worker's browser: this thread already drives the test's own browser,
    and Playwright's sync API allows one per thread."""
    from morket.scraping.browser import shutdown_pool

    pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="scrape-worker")
    yield pool
    pool.submit(shutdown_pool).result()
    pool.shutdown()


def _work(app, services, scrape_thread, run_id: int) -> None:
    """One turn of the enrichment worker, then of the scrape worker (burst)."""
    from morket.enrichment import executor

    with app.app_context():
        executor.work(run_id, 0, budget=3.0)
    scrape_thread.submit(_scrape_burst, app, services).result()


@pytest.mark.browser
def test_scrape_website_column_over_50_companies(
    app,
    services,
    scrape_settings,
    sites,
    scrape_thread,
    live_server,  # noqa: F811
    browser_page,  # noqa: F811
):
    workspace_id, slug, table_id = _committed_team(app, sites)
    sites.reset()
    page, base = browser_page, live_server
    try:
        page.goto(f"{base}/login")
        page.fill("#email", "sam@example.com")
        page.fill("#password", PASSWORD)
        page.click("form button[type=submit]")
        expect(page).not_to_have_url(re.compile(r"/login"))

        page.goto(f"{base}/w/{slug}/tables/{table_id}")
        # The full setup page: where the toolbar's Enrich button leads without JavaScript (with it, a drawer opens).
        page.goto(base + page.get_attribute("#enrich-open", "href"))
        setup = page.locator("#enrichment-setup")
        setup.locator("input[name=name]").fill("Company name")
        setup.locator("select[name=step_1]").select_option("website.scrape")
        expect(setup.locator("select[name=in_domain]")).to_be_visible()
        setup.locator("select[name=in_domain]").select_option(label="Site")
        setup.locator("select[name=target]").select_option("name")
        setup.locator("select[name=out_description]").select_option("new")
        setup.locator("input[name=outname_description]").fill("About")
        setup.locator("#enrichment-save").click()
        expect(page).to_have_url(re.compile(rf"/tables/{table_id}"))
        header = page.locator(".grid-col-header", has_text="Company name")
        expect(header).to_be_visible()
        expect(page.locator(".grid-col-header", has_text="About")).to_be_visible()

        header.click(button="right")
        page.click("button[data-enrich-scope=all]")
        estimate = page.locator("#enrichment-estimate")
        expect(estimate.locator("[data-estimate-rows]")).to_have_text(str(COMPANIES))
        if page.locator("#enrichment-confirm").count():
            page.check("#enrichment-confirm")
        page.click("#enrichment-start")
        expect(page).to_have_url(re.compile(rf"/w/{slug}/runs/\d+$"))
        run_id = int(page.url.rsplit("/", 1)[1])

        for _ in range(40):
            _work(app, services, scrape_thread, run_id)
            if _run_status(app, run_id) == "completed":
                break
        assert _run_status(app, run_id) == "completed"

        page.goto(f"{base}/w/{slug}/runs/{run_id}")
        progress = page.locator(f"#run-{run_id}-progress")
        expect(progress).to_have_attribute("data-status", "completed", timeout=6_000)

        page.goto(f"{base}/w/{slug}/tables/{table_id}")
        grid = page.locator(f"#table-{table_id}-grid")
        expect(grid.locator(".grid-row").first).to_be_visible()
        expect(grid.locator(".grid-cell.is-queued, .grid-cell.is-running, .grid-cell.is-error")).to_have_count(0)
        for i in (0, 1, 7):
            row = grid.locator(".grid-row", has_text=f"Account {i}").first
            expect(row).to_contain_text(company_name(f"co-{i}.test"))
            expect(row).to_contain_text(f"{company_name(f'co-{i}.test')} makes widgets for revenue teams.")
        assert grid.locator(".grid-cell.is-success").count() > 0
        assert page.problems == []
        # Every site was read exactly once, by the scrape worker's browser.
        assert sorted(h for h, p in sites.hits if p == "/") == sorted(f"co-{i}.test" for i in range(COMPANIES))
        assert all(sites.hits[(f"co-{i}.test", "/")] == 1 for i in range(COMPANIES))
    finally:
        engine = create_engine(app.config["SQLALCHEMY_DATABASE_URI"])
        with engine.begin() as conn:
            for (name,) in conn.execute(text("SELECT tablename FROM pg_tables WHERE schemaname = 'ut'")).all():
                conn.execute(text(f"DROP TABLE ut.{name}"))
            conn.execute(text("TRUNCATE tables CASCADE"))
        engine.dispose()
