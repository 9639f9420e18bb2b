"""axe-core on the whole table page, not only ``#main``: the shell around the grid, the grid, an open
column header menu and the open enrichment drawer, at a laptop's, a desktop's and a phone's size.
No serious or critical violation; each state's screenshot goes to the artifacts folder."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect
from sqlalchemy import create_engine, text

from tests.browser.conftest import browser_page, live_server  # noqa: F401 - the browser fixtures
from tests.browser.pagecheck import SIZES, screenshot
from tests.support.axe import axe_path, severe_violations, skip_without_axe
from tests.support.tables import committed_table
from tests.tables.test_edit_browser import PASSWORD


def _committed_table(app) -> tuple[str, int]:
    owner = {"email": "axe@example.com", "name": "Ally", "slug": "axe-co", "workspace_name": "Axe Co"}
    return committed_table(
        app,
        owner={**owner, "password": PASSWORD},
        name="Target accounts",
        columns=[
            {"name": "Company", "type": "text"},
            {"name": "Domain", "type": "domain"},
            {"name": "Seats", "type": "number"},
            {"name": "Stage", "type": "single_select", "config": {"options": ["Lead", "Customer"]}},
            {"name": "Active", "type": "checkbox"},
        ],
        rows=[
            {"Company": "Acme", "Domain": "acme.example", "Seats": 5, "Stage": "Lead", "Active": True},
            {"Company": "Globex", "Domain": "globex.example", "Seats": 1200, "Stage": "Customer"},
            {"Company": "Initech"},
        ],
        formulas=[("Per seat", "100 / {Seats}")],
    )


def _check(page, state: str, size: str) -> list[str]:
    screenshot(page, f"table-page-{state}", size)
    if axe_path() is None:
        return []
    return [f"{state} at {size}: {v}" for v in severe_violations(page)]


@pytest.mark.browser
def test_the_whole_table_page_with_its_menu_and_drawer_has_no_serious_axe_violation(
    app,
    database_url,
    live_server,  # noqa: F811
    browser_page,  # noqa: F811
):
    path, table_id = _committed_table(app)
    page, base = browser_page, live_server
    problems: list[str] = []
    try:
        page.goto(f"{base}/login")
        page.fill("#email", "axe@example.com")
        page.fill("#password", PASSWORD)
        page.click("form button[type=submit]")
        expect(page.locator("#user-menu")).to_be_attached()
        grid = page.locator(f"#table-{table_id}-grid")
        for size, (width, height) in SIZES.items():
            page.set_viewport_size({"width": width, "height": height})
            page.goto(f"{base}{path}")
            expect(grid.locator(".grid-row")).to_have_count(3)
            expect(grid.locator(".grid-col-header .col-menu-btn").first).to_be_attached()
            page.wait_for_load_state("load")
            problems += _check(page, "grid", size)

            # A column's header menu, opened from the keyboard.
            grid.locator(".grid-col-header").nth(2).focus()
            page.keyboard.press("Enter")
            expect(page.locator(".columns-popover .columns-menu")).to_be_visible()
            problems += _check(page, "header-menu", size)
            page.keyboard.press("Escape")
            expect(page.locator(".columns-popover")).to_be_hidden()

            # The enrichment drawer beside the grid.
            page.locator("#enrich-open").click()
            expect(page.locator("#enrich-drawer [data-card]").first).to_be_visible()
            problems += _check(page, "enrich-drawer", size)
        assert problems == [], "\n".join(problems)
        assert page.problems == []
        if axe_path() is None:
            skip_without_axe()
    finally:
        engine = create_engine(database_url)
        with engine.begin() as conn:
            conn.execute(text(f"DROP TABLE IF EXISTS ut.t_{int(table_id)}"))
        engine.dispose()
