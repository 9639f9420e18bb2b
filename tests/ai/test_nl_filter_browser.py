"""In a real browser: an editor types a description above the grid, sees the suggested filter
chips, edits one, applies them, and the grid shows only the matching rows."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from morket.credits.service import grant
from tests.ai.nl_support import companies
from tests.browser.conftest import browser_page, committed_owner, live_server  # noqa: F401 - the browser fixtures
from tests.browser.pagecheck import screenshot
from tests.factories import PASSWORD


@pytest.fixture
def platform_llm(monkeypatch, sandbox_server):
    """The live server (created after this fixture) answers with the sandbox LLM as Morket's default model."""
    monkeypatch.setenv("MORKET_AI_KIND", "openai")
    monkeypatch.setenv("MORKET_AI_BASE_URL", sandbox_server.url("openai") + "/v1")
    monkeypatch.setenv("MORKET_AI_API_KEY", "sandbox-platform-key")
    monkeypatch.setenv("MORKET_AI_MODEL", "sandbox-small")
    return sandbox_server


@pytest.mark.browser
def test_type_a_phrase_see_chips_apply_and_the_grid_filters(app, platform_llm, live_server, browser_page):  # noqa: F811
    from morket.extensions import db

    with app.app_context():
        workspace, owner = committed_owner(
            email="nl@example.com", name="Nia", slug="nia-nl", workspace_name="Nia NL", password=PASSWORD
        )
        db.session.flush()
        table = companies(workspace, owner)
        grant(workspace.id, 1000, idempotency_key="nl-filter-browser")
        slug, table_id = workspace.slug, table.id
        db.session.commit()
        db.session.remove()  # no open transaction may hold locks the live server's clean-up needs
    page, base = browser_page, live_server
    page.set_viewport_size({"width": 1366, "height": 768})
    page.goto(f"{base}/login")
    page.fill("#email", "nl@example.com")
    page.fill("#password", PASSWORD)
    page.click("form button[type=submit]")
    page.goto(f"{base}/w/{slug}/tables/{table_id}")
    page.wait_for_load_state("load")
    grid = page.locator(f"#table-{table_id}-grid")
    expect(grid.locator(".grid-row")).to_have_count(9)

    page.fill(f"#nl-filter-text-{table_id}", "German companies with more than 50 employees and no email yet")
    page.click(f"#nl-filter-{table_id} button:text('Suggest filters')")
    chips = page.locator("[data-nl-chip]")
    expect(chips).to_have_count(3)
    expect(chips.nth(0).locator("select.nl-chip-col")).to_have_value(
        page.locator(f"#nl-filter-{table_id} select.nl-chip-col option:text('Country')").first.get_attribute("value")
    )
    expect(chips.nth(1).locator("input.nl-chip-val")).to_have_value("50")
    expect(grid.locator(".grid-row")).to_have_count(9)  # suggested, not applied yet
    screenshot(page, "nl-filter-chips", "1366x768")

    chips.nth(1).locator("input.nl-chip-val").fill("100")  # the person edits a chip before applying
    page.click(f"#nl-filter-{table_id} button.nl-filter-apply")
    page.wait_for_url(f"**/tables/{table_id}?view=*")
    page.wait_for_load_state("load")
    grid = page.locator(f"#table-{table_id}-grid")
    expect(grid.locator(".grid-row")).to_have_count(1)
    expect(grid.locator(".grid-row").first).to_contain_text("Acme GmbH")
    expect(page.locator("[data-chip=filter] summary")).to_contain_text("3 filters")
    screenshot(page, "nl-filter-applied", "1366x768")

    page.fill(f"#nl-filter-text-{table_id}", "companies with a favourite colour of blue")
    page.click(f"#nl-filter-{table_id} button:text('Suggest filters')")
    expect(page.locator(".nl-filter-error")).to_contain_text("favourite colour")
    assert page.problems == [] or all("422" in p for p in page.problems), page.problems
