"""In a real browser: a research column's cell detail (the grid's row panel) shows the answer's citations
(the page's link and the quoted passage), and for a hostile page the refused address among the pages
visited. The run is worked in this process (as its worker would), against local company sites, the web
search sandbox and the sandbox LLM."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from tests.ai.column_support import ai, finish  # noqa: F401 - fixture
from tests.ai.research_support import (
    ACME_HOME,
    research,  # noqa: F401 - fixture
    research_column,
    research_sites,  # noqa: F401 - fixture
    research_table,
)
from tests.browser.conftest import browser_page, committed_owner, live_server  # noqa: F401 - the browser fixtures
from tests.browser.pagecheck import screenshot
from tests.factories import PASSWORD


@pytest.mark.browser
def test_the_row_panel_shows_a_research_cells_citations(app, research, live_server, browser_page):  # noqa: F811
    from morket.ai import column_runs
    from morket.credits.service import grant
    from morket.extensions import db
    from morket.scraping.pages import html_text

    with app.app_context():
        workspace, owner = committed_owner(email="rae@example.com", name="Rae", slug="rae-research",
                                           workspace_name="Rae Research", password=PASSWORD)  # fmt: skip
        db.session.flush()
        grant(workspace.id, 10_000, idempotency_key="research-browser")
        table = research_table(workspace, owner, research, [("Acme", "acme.test"), ("Evil Corp", "evil.test")])
        column = research_column(workspace, owner, table, name="Founded (researched)")
        run = column_runs.start_run(workspace, owner, table, column)
        db.session.commit()
        finish(run.id)
        slug, table_id = workspace.slug, table.id
        db.session.remove()  # no open transaction may hold locks the live server's clean-up needs
    page, base = browser_page, live_server
    page.set_viewport_size({"width": 1366, "height": 768})
    page.goto(f"{base}/login")
    page.fill("#email", "rae@example.com")
    page.fill("#password", PASSWORD)
    page.click("form button[type=submit]")
    page.goto(f"{base}/w/{slug}/tables/{table_id}")
    grid = page.locator(f"#table-{table_id}-grid")
    expect(grid.locator(".grid-row")).to_have_count(2)
    expect(grid.locator(".grid-row").first).to_contain_text("Acme builds reusable rockets")

    panel = page.locator(f"#table-{table_id}-panel")
    grid.locator(".grid-row").first.locator(".grid-rownum").click()
    expect(panel).to_contain_text("Row details")
    citation = panel.locator(".ai-citation").first
    expect(citation).to_be_visible()
    quote = citation.locator(".ai-quote").inner_text().strip("“”")
    assert quote and quote in html_text(ACME_HOME)[1]  # the quoted passage is on the page it links to
    expect(citation.locator("a")).to_have_attribute("href", research.url("acme.test", "/"))
    expect(citation.locator("a")).to_have_attribute("rel", "noopener noreferrer nofollow")
    screenshot(page, "ai-research-citations", "1366x768")

    panel.locator("[data-close-panel]").click()
    grid.locator(".grid-row").nth(1).locator(".grid-rownum").click()
    expect(panel.locator(".ai-citation").first).to_contain_text("Evil Corp designs umbrellas")
    panel.locator(".ai-pages summary").click()
    refused = panel.locator("[data-page-outcome=refused]")
    expect(refused).to_contain_text("169.254.169.254")
    expect(refused).to_contain_text("private networks")
    screenshot(page, "ai-research-refused-page", "1366x768")
    assert page.problems == [], page.problems
