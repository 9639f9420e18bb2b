"""The main pages at a laptop's, a desktop's and a phone's size: nothing scrolls sideways, no navigation
wraps, axe-core finds nothing serious, and each page's screenshot is kept for CI's artifacts."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect
from sqlalchemy import create_engine, text

from tests.browser.conftest import committed_owner
from tests.browser.pagecheck import SIZES, check_page, layout_problems, screenshot
from tests.factories import PASSWORD

# Long enough to have wrapped in the old header at 1366 px.
WORKSPACE_NAME = "Acme Revenue Operations EMEA"


@pytest.fixture
def dataops_env(app, tmp_path, monkeypatch):
    """Share one upload folder between the live server and this process."""
    folder = str(tmp_path / "dataops")
    monkeypatch.setenv("MORKET_DATAOPS_DIR", folder)
    monkeypatch.setitem(app.config["MORKET"], "DATAOPS_DIR", folder)
    return folder


@pytest.fixture
def team(app, dataops_env):
    """An owner (also a platform admin) of a workspace with a table, a second member and a pending invitation."""
    from morket.accounts.models import User
    from morket.core.security import hash_password
    from morket.extensions import db
    from morket.tables import service as tables
    from morket.workspaces import service as workspaces
    from morket.workspaces.models import Membership

    with app.app_context():
        workspace, owner = committed_owner(
            email="olga@example.com", name="Olga Owner", slug="acme", workspace_name=WORKSPACE_NAME, password=PASSWORD
        )
        owner.is_platform_admin = True
        member = User(email="max@example.com", name="Max Member", password_hash=hash_password(PASSWORD))
        db.session.add(member)
        db.session.flush()
        db.session.add(Membership(workspace_id=workspace.id, user_id=member.id, role="member"))
        table = tables.create_table(
            workspace,
            owner,
            "Q4 target accounts",
            columns=[{"name": "Company", "type": "text"}, {"name": "Domain", "type": "domain"}],
        )
        tables.insert_rows(workspace, owner, table, [{"Company": "Northwind", "Domain": "northwind.example"}])
        workspaces.invite_member(workspace, owner, "ivy@example.com", "viewer")
        db.session.commit()
        from morket.search import tasks as search_tasks

        search_tasks.sync_search()  # the scheduler's sweep: the search results page finds Northwind
        made = {"slug": workspace.slug, "table_id": table.id}
    # Out of the app context, so no transaction of this process holds a lock the server's cleanup waits for.
    yield made
    engine = create_engine(app.config["SQLALCHEMY_DATABASE_URI"])
    with engine.begin() as conn:
        for (name,) in conn.execute(text("SELECT tablename FROM pg_tables WHERE schemaname = 'ut'")).all():
            conn.execute(text(f"DROP TABLE ut.{name}"))
        conn.execute(text("TRUNCATE tables, data_runs CASCADE"))
    engine.dispose()


def _log_in(page, base: str) -> None:
    page.goto(f"{base}/login")
    page.fill("#email", "olga@example.com")
    page.fill("#password", PASSWORD)
    page.click("form button[type=submit]")
    expect(page.locator("#user-menu")).to_be_attached()


def _import_mapping_url(page, base: str, slug: str, table_id: int, tmp_path) -> str:
    upload = tmp_path / "accounts.csv"
    upload.write_text("Company,Domain,Employees\r\nFabrikam,fabrikam.example,120\r\nContoso,contoso.example,45\r\n")
    page.goto(f"{base}/w/{slug}/tables/{table_id}/import")
    page.set_input_files("#import-file", str(upload))
    page.click("#import-upload button[type=submit]")
    expect(page.locator("#import-preview")).to_contain_text("Fabrikam")
    return page.url


@pytest.mark.browser
@pytest.mark.parametrize("size", list(SIZES))
def test_main_pages_fit_every_size_without_wrapping_or_serious_axe_violations(
    size, team, live_server, browser_page, tmp_path
):
    page, base, slug = browser_page, live_server, team["slug"]
    width, height = SIZES[size]
    page.set_viewport_size({"width": width, "height": height})
    _log_in(page, base)
    pages = {
        "workspace-overview": f"{base}/w/{slug}/",
        "tables-list": f"{base}/w/{slug}/tables",
        "import-mapping": _import_mapping_url(page, base, slug, team["table_id"], tmp_path),
        "members": f"{base}/w/{slug}/members",
        "credits": f"{base}/w/{slug}/credits",
        "admin": f"{base}/admin",
        # The pages added with webhooks, CRM connections and inbound sources, empty as a new workspace has them.
        "webhooks": f"{base}/w/{slug}/webhooks",
        "connections": f"{base}/w/{slug}/connections",
        "inbound-sources": f"{base}/w/{slug}/tables/{team['table_id']}/inbound",
        # And those added with billing, search and AI models.
        "billing": f"{base}/w/{slug}/billing",
        "search-results": f"{base}/w/{slug}/search?q=Northwind",
        "search-no-results": f"{base}/w/{slug}/search?q=nowhere-to-be-found",
        "ai-models": f"{base}/w/{slug}/ai-models",
        "crm-pull": f"{base}/w/{slug}/crm/pull",
    }
    problems = []
    for name, url in pages.items():
        page.goto(url)
        problems += check_page(page, name, size)

    if width < 1024:
        # The sidebar is a drawer on a phone: closed, it takes no room; open, nothing in it wraps.
        page.goto(pages["workspace-overview"])
        expect(page.locator("#sidebar")).to_be_hidden()
        page.click("#sidebar-toggle")
        expect(page.locator("#sidebar a:has-text('Members')")).to_be_visible()
        expect(page.locator("#sidebar-toggle")).to_have_attribute("aria-expanded", "true")
        page.wait_for_function("() => document.getElementById('sidebar').getBoundingClientRect().left >= 0")
        screenshot(page, "workspace-overview-drawer", size)
        problems += [f"drawer at {size}: {p}" for p in layout_problems(page)]
        page.keyboard.press("Escape")
        expect(page.locator("#sidebar")).to_be_hidden()
    else:
        # On a desktop the sidebar is always there and names every part of the workspace.
        page.goto(pages["workspace-overview"])
        nav = page.locator("nav[aria-label=Workspace]")
        for label in ("Overview", "Tables", "Runs", "Scrape", "Members", "API keys", "Credentials", "Credits"):
            expect(nav.get_by_role("link", name=label, exact=True)).to_be_visible()
    assert problems == [], "\n".join(problems)
    assert page.problems == [], page.problems
