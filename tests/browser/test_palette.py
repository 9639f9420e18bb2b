"""The command palette in Chromium: it finds any table of the workspace by part of its name (the
sidebar lists eight), pages by what they are for, and never lists a destructive action."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect
from sqlalchemy import create_engine, text

from tests.browser.conftest import committed_owner
from tests.browser.pagecheck import axe_violations, screenshot
from tests.factories import PASSWORD


@pytest.fixture
def thirty_tables(app):
    """An owner and a viewer of a workspace with 30 tables ("Lead list 01" … "Lead list 30")."""
    from morket.accounts.models import User
    from morket.core.db import utcnow
    from morket.core.security import hash_password
    from morket.extensions import db
    from morket.tables import service as tables
    from morket.workspaces.models import Membership

    with app.app_context():
        workspace, owner = committed_owner(
            email="pal@example.com", name="Pal Owner", slug="pal-co", workspace_name="Pal Co", password=PASSWORD
        )
        viewer = User(email="vic@example.com", name="Vic Viewer", password_hash=hash_password(PASSWORD))
        viewer.email_verified_at = utcnow()
        db.session.add(viewer)
        db.session.flush()
        db.session.add(Membership(workspace_id=workspace.id, user_id=viewer.id, role="viewer"))
        made = [
            tables.create_table(workspace, owner, f"Lead list {n:02d}", columns=[{"name": "Name", "type": "text"}])
            for n in range(1, 31)
        ]
        db.session.commit()
        info = {"slug": workspace.slug, "ids": [t.id for t in made]}
    yield info
    engine = create_engine(app.config["SQLALCHEMY_DATABASE_URI"])
    with engine.begin() as conn:
        for table_id in info["ids"]:
            conn.execute(text(f"DROP TABLE IF EXISTS ut.t_{int(table_id)}"))
        conn.execute(text("TRUNCATE tables CASCADE"))
    engine.dispose()


def _log_in(page, base: str, email: str) -> None:
    page.goto(f"{base}/login")
    page.fill("#email", email)
    page.fill("#password", PASSWORD)
    page.click("form button[type=submit]")
    expect(page.locator("#user-menu")).to_be_attached()


def _options(page) -> list[str]:
    return page.locator("#palette-list [role=option] span:first-child").all_inner_texts()


@pytest.mark.browser
def test_the_palette_finds_table_27_of_30_and_opens_it_by_keyboard(thirty_tables, live_server, browser_page):
    page, base, slug = browser_page, live_server, thirty_tables["slug"]
    _log_in(page, base, "pal@example.com")
    page.goto(f"{base}/w/{slug}")
    # The sidebar lists the newest eight: table 27 is not among them... (30 … 23)
    expect(page.locator("#sidebar-tables li")).to_have_count(8)
    expect(page.locator("#sidebar-tables")).not_to_contain_text("Lead list 22")
    page.keyboard.press("Control+k")
    palette_input = page.locator("#palette-input")
    expect(palette_input).to_be_focused()
    palette_input.type("list 2", delay=20)
    # ... and the palette, asking the server, lists the tables in the twenties that the sidebar lacks.
    expect(page.locator("#palette-list")).to_contain_text("Table: Lead list 21")
    screenshot(page, "palette-table-search", "1280x860")
    assert axe_violations(page) == [], "the open palette has serious accessibility problems"
    palette_input.type("7", delay=20)
    expect(page.locator("#palette-list [role=option]").first).to_have_text("Table: Lead list 27Table")
    assert _options(page) == ["Table: Lead list 27"]
    expect(page.locator("#palette-status")).to_have_text("1 result")
    assert palette_input.get_attribute("aria-activedescendant") == "palette-option-0"
    page.keyboard.press("Enter")
    table_27 = thirty_tables["ids"][26]
    expect(page).to_have_url(f"{base}/w/{slug}/tables/{table_27}")
    expect(page.locator(".grid-title, h1").first).to_contain_text("Lead list 27")

    # Pages by what they are for: "scraping" finds the scrape page, "billing" the billing page and the
    # credits, Escape closes.
    page.wait_for_load_state("load")
    page.keyboard.press("Control+k")
    expect(palette_input).to_be_focused()
    palette_input.fill("scraping")
    expect(page.locator("#palette-list [role=option]").first).to_contain_text("Scrape a website")
    palette_input.fill("billing")
    expect(page.locator("#palette-list [role=option]").first).to_contain_text("Billing")
    expect(page.locator("#palette-list [role=option]", has_text="Credits")).to_have_count(1)
    # Pages the sidebar does not list: search, the large exports, imports, a CRM pull.
    palette_input.fill("exports")
    expect(page.locator("#palette-list [role=option]", has_text="Large exports")).to_have_count(1)
    expect(page.locator("#palette-list [role=option]", has_text="Imports and exports")).to_have_count(1)
    palette_input.fill("hubspot")
    expect(page.locator("#palette-list [role=option]").first).to_contain_text("Import from a CRM")
    palette_input.fill("zzz no such thing")
    expect(page.locator("#palette-empty")).to_be_visible()
    palette_input.fill("find rows")
    expect(page.locator("#palette-list [role=option]").first).to_have_text("Search every tableGo to")
    page.keyboard.press("Enter")
    expect(page).to_have_url(f"{base}/w/{slug}/search")

    # The current page's common actions: on the tables list, "Create table".
    page.goto(f"{base}/w/{slug}/tables")
    page.keyboard.press("Control+k")
    expect(palette_input).to_be_focused()
    palette_input.fill("create")
    expect(page.locator("#palette-list [role=option]").first).to_have_text("Create tableAction")
    page.keyboard.press("Escape")
    expect(page.locator("#palette")).not_to_be_visible()

    # On a table: the tools of its "more" menu, closed as it is, are actions of the palette.
    page.goto(f"{base}/w/{slug}/tables/{table_27}")
    page.wait_for_load_state("load")
    page.keyboard.press("Control+k")
    expect(palette_input).to_be_focused()
    palette_input.fill("export")
    expect(page.locator("#palette-list [role=option]").first).to_have_text("Export CSVAction")
    palette_input.fill("duplicates")
    expect(page.locator("#palette-list [role=option]").first).to_have_text("Find duplicatesAction")
    palette_input.fill("")
    expect(page.locator("#palette-list [role=option]", has_text="Add a row")).to_have_count(1)
    assert not [o for o in _options(page) if "delete" in o.lower()], _options(page)  # not "Delete selected rows"
    palette_input.fill("duplicates")
    page.keyboard.press("Enter")
    expect(page).to_have_url(f"{base}/w/{slug}/tables/{table_27}/dedupe")
    assert page.problems == []


@pytest.mark.browser
def test_a_viewer_finds_the_tables_but_no_destructive_action(thirty_tables, live_server, browser_page):
    page, base, slug = browser_page, live_server, thirty_tables["slug"]
    _log_in(page, base, "vic@example.com")
    page.goto(f"{base}/w/{slug}/tables")
    page.keyboard.press("Control+k")
    expect(page.locator("#palette-input")).to_be_focused()
    expect(page.locator("#palette-list")).to_contain_text("Table: Lead list 11")  # the server's twenty newest
    everything = _options(page)
    assert len([o for o in everything if o.startswith("Table: ")]) == 20, everything
    for word in ("delete", "remove", "revoke", "clear", "new table", "create", "import"):
        assert not [o for o in everything if word in o.lower()], (word, everything)
    # A viewer still finds the pages it may read that the sidebar does not list.
    assert "Search every table" in everything and "Large exports" in everything, everything
    page.locator("#palette-input").fill("lead list 05")
    expect(page.locator("#palette-list [role=option]")).to_have_count(1)
    page.keyboard.press("ArrowDown")
    page.keyboard.press("Enter")
    expect(page).to_have_url(f"{base}/w/{slug}/tables/{thirty_tables['ids'][4]}")
    assert page.problems == []
