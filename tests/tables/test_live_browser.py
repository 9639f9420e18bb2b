"""Two people on one table in two browsers: each sees the other's edits, pastes, deletes and a worker's
writes within a second, without a reload, and keeps their own selection and scroll position; someone
of another workspace gets nothing from the table's stream."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from playwright.sync_api import expect, sync_playwright
from sqlalchemy import create_engine, text

from tests.browser.conftest import committed_owner, live_server  # noqa: F401 - the browser fixtures
from tests.support.live import CHROMIUM_ARGS, chromium_path
from tests.support.tables import committed_table

PASSWORD = "live grid passphrase"
SCREENSHOTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "screenshots"
ROWS = [{"Company": f"Company {i}", "Seats": i} for i in range(60)]
WITHIN_MS = 1000


def _member(app, workspace_slug: str, email: str, name: str) -> None:
    from sqlalchemy import select

    from morket.accounts.models import User
    from morket.core.db import utcnow
    from morket.core.security import hash_password
    from morket.extensions import db
    from morket.workspaces.models import Membership, Workspace

    with app.app_context():
        workspace = db.session.scalars(select(Workspace).where(Workspace.slug == workspace_slug)).one()
        user = User(email=email, name=name, password_hash=hash_password(PASSWORD), email_verified_at=utcnow())
        db.session.add(user)
        db.session.flush()
        db.session.add(Membership(workspace_id=workspace.id, user_id=user.id, role="member"))
        db.session.commit()


def _worker_write(app, table_id: int, row_pos: int, value: str) -> None:
    """What a worker does: write a cell through tables' write path in its own transaction, and commit."""
    from morket.extensions import db
    from morket.tables import service
    from morket.tables.models import Table
    from morket.workspaces.models import Workspace

    with app.app_context():
        table = db.session.get(Table, table_id)
        workspace = db.session.get(Workspace, table.workspace_id)
        row = service.read_window(workspace, None, table, None, row_pos, 1)[0]
        company = next(c for c in table.live_columns if c.name == "Company")
        service.write_cells(workspace, table, {row.id: {company.id: value}})
        db.session.commit()


def _login(page, base: str, email: str) -> None:
    page.goto(f"{base}/login")
    page.fill("#email", email)
    page.fill("#password", PASSWORD)
    page.click("form button[type=submit]")
    page.wait_for_load_state("load")


def _cell(page, pos: int, column: int):
    return page.locator(f".grid-rows .grid-row[data-pos='{pos}'] .grid-cell").nth(column)


def _cursor(page) -> tuple[str, str] | None:
    return page.evaluate(
        """() => { const c = document.querySelector('.grid-cell.is-cursor');
                   return c ? [c.closest('.grid-row').dataset.rowId, c.dataset.colId] : null; }"""
    )


def _scroll_top(page) -> int:
    return page.evaluate("() => document.querySelector('.grid[data-rows-url]').scrollTop")


@pytest.mark.browser
def test_two_people_see_each_others_changes_within_a_second(app, database_url, live_server):  # noqa: F811
    base = live_server
    owner = {"email": "ana@example.com", "name": "Ana", "slug": "live-co", "workspace_name": "Live Co"}
    columns = [{"name": "Company", "type": "text"}, {"name": "Seats", "type": "number"}]
    path, table_id = committed_table(
        app, owner={**owner, "password": PASSWORD}, name="Live", columns=columns, rows=ROWS
    )
    _member(app, "live-co", "ben@example.com", "Ben")
    with app.app_context():
        from morket.extensions import db

        committed_owner(
            email="eve@example.com", name="Eve", slug="elsewhere", workspace_name="Elsewhere", password=PASSWORD
        )
        db.session.commit()

    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=chromium_path(), args=CHROMIUM_ARGS)
            contexts = [browser.new_context(viewport={"width": 1280, "height": 860}) for _ in range(3)]
            ana, ben, eve = (c.new_page() for c in contexts)
            for page in (ana, ben, eve):
                page.set_default_timeout(10_000)
            problems: list[str] = []
            for page in (ana, ben):
                page.on("pageerror", lambda exc: problems.append(str(exc)))
                page.on("dialog", lambda dialog: dialog.accept())
            _login(ana, base, "ana@example.com")
            _login(ben, base, "ben@example.com")
            for page in (ana, ben):
                page.goto(f"{base}{path}")
                page.wait_for_load_state("load")
                expect(_cell(page, 0, 0)).to_have_text("Company 0")
                expect(page.locator(".grid[data-live='open']")).to_have_count(1)

            # Ben scrolls down a few rows and puts his cursor on row 15's Seats.
            ben.evaluate("() => { document.querySelector('.grid[data-rows-url]').scrollTop = 160; }")
            _cell(ben, 15, 1).click()
            cursor, scrolled = _cursor(ben), _scroll_top(ben)
            assert cursor is not None and scrolled > 0

            def kept() -> None:
                assert _cursor(ben) == cursor, "Ben's selection moved"
                assert _scroll_top(ben) == scrolled, "Ben's grid scrolled"

            # 1. Ana edits a cell.
            _cell(ana, 12, 0).click()
            ana.keyboard.type("Initech")
            ana.keyboard.press("Enter")
            expect(ana.locator("[data-edit-status]")).to_have_text("Saved.")
            expect(_cell(ben, 12, 0)).to_have_text("Initech", timeout=WITHIN_MS)
            kept()

            # 2. Ana pastes 50 cells (25 rows x 2 columns) from row 20.
            _cell(ana, 20, 0).click()
            block = "".join(f"Pasted {i}\\t{1000 + i}\\r\\n" for i in range(25))
            ana.evaluate(
                f"""() => {{
                    const data = new DataTransfer();
                    data.setData("text/plain", "{block}");
                    const paste = new ClipboardEvent("paste", {{clipboardData: data, bubbles: true}});
                    document.activeElement.dispatchEvent(paste);
                }}"""
            )
            expect(ana.locator("[data-edit-status]")).to_have_text("Pasted 50 cells.")
            expect(_cell(ben, 44, 1)).to_have_text("1,024", timeout=WITHIN_MS)
            expect(_cell(ben, 20, 0)).to_have_text("Pasted 0")
            kept()

            # 3. Ana deletes row 3 ("Company 3"): Ben's row 3 is now Company 4, and he has 59 rows.
            _cell(ana, 3, 0).click()
            ana.locator("[data-edit-action='delete-rows']").first.dispatch_event("click")
            expect(ana.locator("[data-grid-count]")).to_have_text("59 rows")
            expect(_cell(ben, 3, 0)).to_have_text("Company 4", timeout=WITHIN_MS)
            expect(ben.locator("[data-grid-count]")).to_have_text("59 rows", timeout=WITHIN_MS)
            assert _cursor(ben) == cursor, "Ben's selection moved"

            # 4. A worker writes a cell (an enrichment batch's path): both grids show it.
            began = time.monotonic()
            _worker_write(app, table_id, 5, "From the worker")
            expect(_cell(ben, 5, 0)).to_have_text("From the worker", timeout=WITHIN_MS)
            expect(_cell(ana, 5, 0)).to_have_text("From the worker", timeout=WITHIN_MS)
            assert time.monotonic() - began < 2 * WITHIN_MS / 1000
            assert _cursor(ben) == cursor, "Ben's selection moved"
            SCREENSHOTS.mkdir(parents=True, exist_ok=True)
            ben.screenshot(path=str(SCREENSHOTS / "grid-live-second-viewer.png"))

            # Eve, of another workspace, gets 404 from the table's stream (under her slug or theirs).
            _login(eve, base, "eve@example.com")
            for slug in ("elsewhere", "live-co"):
                got = eve.evaluate(
                    """async (url) => { const r = await fetch(url);
                                         return [r.status, (await r.text()).includes("event:")]; }""",
                    f"/w/{slug}/tables/{table_id}/live",
                )
                assert got == [404, False], (slug, got)
            assert problems == []
            for context in contexts:
                context.close()
            browser.close()
    finally:
        engine = create_engine(database_url)
        with engine.begin() as conn:
            conn.execute(text(f"DROP TABLE IF EXISTS ut.t_{int(table_id)}"))
        engine.dispose()
