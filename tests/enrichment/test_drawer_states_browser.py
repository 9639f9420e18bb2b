"""Every state of the enrichment drawer, in a real browser, on a laptop (1366×768) and a phone (390×844).

One table and one login for the module; each state is reached by its drawer URL (htmx into the drawer
the toolbar's Enrich button opened) or by the one click that produces it. In each state: the page does
not scroll sideways, the drawer's close button and primary action fit in the viewport, axe-core finds no
serious or critical violation in the drawer, and on the laptop the grid stays visible beside it. A
screenshot per state and size lands in ``test-artifacts/screenshots/drawer-<state>-<size>.png``.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from playwright.sync_api import Page, expect
from sqlalchemy import create_engine, text

from tests.browser.conftest import TOUCHED_TABLES, committed_owner
from tests.browser.pagecheck import SCREENSHOTS
from tests.enrichment.test_panel_browser import _work_until_done
from tests.factories import PASSWORD
from tests.providers.test_http_request import JsonApi
from tests.support.live import chromium_page, serve_app

SIZES = {"1366x768": (1366, 768), "390x844": (390, 844)}
ROWS = 12
PEOPLE = ("Ada Lovelace", "Grace Hopper", "Alan Turing", "Barbara Liskov")
SCRAPED = {
    "name": "Acct0",
    "description": "Data for go-to-market teams: enrichment, scoring and outbound in one table.",
    "emails": ["hello@acct0.example.com"],
    "phones": [],
    "technologies": ["HubSpot", "Segment"],
}


@dataclass
class Drawer:
    page: Page
    base: str
    grid_url: str
    panel: str  # the table's enrichment URL prefix
    ids: dict[str, Any] = field(default_factory=dict)


def _data(app, api_port: int) -> dict[str, Any]:
    """The committed workspace: a table, a Work email waterfall run on its first 10 rows, an HTTP column,
    and a finished scrape of the first row's site for the scrape card's preview."""
    from werkzeug.datastructures import MultiDict

    from morket.credits import service as credits
    from morket.enrichment import columns as enrichment_columns
    from morket.enrichment import forms, panel_forms, panel_service
    from morket.enrichment.schemas import ColumnSetup
    from morket.extensions import db
    from morket.scraping.models import ScrapeRequest
    from morket.tables import service as tables

    with app.app_context():
        workspace, user = committed_owner(
            email="dora@example.com", name="Dora", slug="dora-co", workspace_name="Dora Co", password=PASSWORD
        )
        credits.grant(workspace.id, 1_000, idempotency_key="drawer-grant")
        table = tables.create_table(
            workspace,
            user,
            "Leads",
            columns=[
                {"name": "Name", "type": "text"},
                {"name": "Company domain", "type": "domain"},
                {"name": "Website", "type": "text"},
            ],
        )
        rows = [
            {
                "Name": PEOPLE[i % len(PEOPLE)],
                "Company domain": f"acct{i}.example.com",
                "Website": f"acct{i}.example.com",
            }
            for i in range(ROWS)
        ]
        tables.insert_rows(workspace, user, table, rows)
        ids = {c.name: c.id for c in table.live_columns}
        waterfall = enrichment_columns.create_enrichment_column(
            workspace,
            user,
            table,
            ColumnSetup.model_validate(
                {
                    "name": "Work email",
                    "steps": [{"operation": "hunter.email_finder"}, {"operation": "apollo.people_match"}],
                    "target": "email",
                    "inputs": {"domain": ids["Company domain"], "first_name": ids["Name"], "last_name": ids["Name"]},
                    "derive": {"first_name": "first_name", "last_name": "last_name"},
                }
            ),
        )
        card = {
            "name": "Company API",
            "http_method_1": "GET",
            "http_url_1": f"http://127.0.0.1:{api_port}/companies?domain={{{{website}}}}",
            "in_website": str(ids["Website"]),
            "hdr_name_1": "X-Team",
            "hdr_value_1": "growth",
            "hdr_name_2": "Accept",
            "hdr_value_2": "application/json",
            "header_rows": "2",
            "out_field": "company",
            "out_path": "$.company.name",
            "out_type": "text",
        }
        setup = forms.setup_from_form(MultiDict(panel_forms.http_values(card)), enrichment_columns.operations())
        http = enrichment_columns.create_enrichment_column(workspace, user, table, setup)
        run = panel_service.start(workspace, user, table, waterfall, "first")
        first_row = tables.read_window(workspace, user, table, None, 0, 1)[0].id
        scrape = ScrapeRequest(
            workspace_id=workspace.id,
            created_by_id=user.id,
            source="panel",
            url="https://acct0.example.com/",
            extractor="company",
            status="done",
            final_url="https://acct0.example.com/",
            http_status=200,
            result=SCRAPED,
        )
        db.session.add(scrape)
        db.session.commit()
        found = {
            "workspace": workspace.slug,
            "table": table.id,
            "waterfall": waterfall.id,
            "http": http.id,
            "row": first_row,
            "scrape": scrape.id,
            "run": run.id,
            "api_port": api_port,
        }
    _work_until_done(app, found["run"])
    return found


def _cleanup(database_url: str) -> None:
    engine = create_engine(database_url)
    with engine.begin() as conn:
        for (name,) in conn.execute(text("SELECT tablename FROM pg_tables WHERE schemaname = 'ut'")).all():
            conn.execute(text(f"DROP TABLE ut.{name}"))
        conn.execute(
            text(f"TRUNCATE tables, scrape_requests, provider_credentials, {', '.join(TOUCHED_TABLES)} CASCADE")
        )
    engine.dispose()


@pytest.fixture(scope="module")
def drawer(app, database_url, services, smtp_server, sandbox) -> Iterator[Drawer]:
    """A live server pointed at the provider sandboxes and a loopback JSON API, the module's data, and
    one logged-in Chromium page."""
    api = JsonApi()
    allowed = f"127.0.0.1:{api.port}"
    settings = app.config["MORKET"]
    before = settings.get("SCRAPE_ALLOWLIST")
    settings["SCRAPE_ALLOWLIST"] = [allowed]
    sandbox.reset()
    try:
        with pytest.MonkeyPatch.context() as mp:
            mp.setenv("MORKET_SCRAPE_ALLOWLIST", allowed)
            for name in ("hunter", "apollo", "clearbit"):
                mp.setenv(f"MORKET_{name.upper()}_URL", sandbox.url(name))
                mp.setenv(f"MORKET_{name.upper()}_API_KEY", f"sandbox-{name}-key")
            with serve_app(database_url, services["redis"], smtp_server, name="morket-drawer-server") as base:
                found = _data(app, api.port)
                with chromium_page(width=1366, height=768) as page:
                    page.goto(f"{base}/login")
                    page.fill("#email", "dora@example.com")
                    page.fill("#password", PASSWORD)
                    page.click("form button[type=submit]")
                    expect(page).not_to_have_url(re.compile(r"/login"))
                    grid_url = f"{base}/w/{found['workspace']}/tables/{found['table']}"
                    panel = f"/w/{found['workspace']}/tables/{found['table']}/enrichment"
                    yield Drawer(page=page, base=base, grid_url=grid_url, panel=panel, ids=found)
    finally:
        settings["SCRAPE_ALLOWLIST"] = before
        api.server.shutdown()
        sandbox.reset()
        _cleanup(database_url)


# --- reaching each state -----------------------------------------------------------------------------------


def _load(d: Drawer, path: str) -> None:
    """Fill the open drawer with the panel at ``path``, as its links do (htmx into the drawer's body)."""
    d.page.evaluate("url => htmx.ajax('GET', url, {target: '#enrich-drawer-body', swap: 'innerHTML'})", d.panel + path)


def _cancel_open_runs(app, column_id: int) -> None:
    """Let the column be run again: a run left queued by an earlier state of this module is cancelled."""
    from morket.enrichment import service
    from morket.enrichment.models import EnrichmentRun
    from morket.extensions import db
    from morket.workspaces.models import Workspace

    with app.app_context():
        for run in db.session.query(EnrichmentRun).filter_by(column_id=column_id).all():
            if not run.finished:
                service.cancel_run(db.session.get(Workspace, run.workspace_id), None, run)
        db.session.commit()


def _catalogue(d: Drawer, app) -> str:
    expect(d.page.locator("#enrich-catalogue [data-card='preset:email_waterfall']")).to_be_visible()
    return "[data-card='preset:email_waterfall'] a.enrich-card-link"


# htmx has bound the catalogue's search form (it does so just after the drawer's content is shown:
# typing before then is what a person cannot do, and the first keystrokes went unheard).
_SEARCH_BOUND = """() => { const f = document.querySelector('#enrich-catalogue form.enrich-search');
  return !!(f && f['htmx-internal-data'] && f['htmx-internal-data'].initHash); }"""


def _search_catalogue(d: Drawer, words: str) -> None:
    d.page.wait_for_function(_SEARCH_BOUND)
    d.page.locator("#enrich-q").fill(words)


def _catalogue_search(d: Drawer, app) -> str:
    _search_catalogue(d, "phone")
    expect(d.page.locator("#enrich-cards [data-card]").first).to_be_visible()
    expect(d.page.locator("#enrich-cards [data-card='preset:email_waterfall']")).to_have_count(0)
    return "#enrich-cards a.enrich-card-link >> nth=0"


def _catalogue_category(d: Drawer, app) -> str:
    d.page.wait_for_function(_SEARCH_BOUND)
    d.page.locator(".enrich-cats label", has_text="Companies").click()
    expect(d.page.locator("#enrich-cards [data-card='op:website.scrape']")).to_be_visible()
    return "#enrich-cards a.enrich-card-link >> nth=0"


def _catalogue_nothing(d: Drawer, app) -> str:
    _search_catalogue(d, "zzqx nothing like this")
    expect(d.page.locator("#enrich-cards .enrich-empty")).to_contain_text("No enrichment matches")
    return "[data-empty-action]"


def _setup_waterfall(d: Drawer, app) -> str:
    _load(d, "/panel/setup?card=preset:email_waterfall")
    expect(d.page.locator("#enrich-preview tbody tr")).to_have_count(3)
    expect(d.page.locator("#enrich-preview td[data-input=first_name]").first).to_have_text("Ada")
    return "#enrich-save"


def _column(d: Drawer, app) -> str:
    _load(d, f"/{d.ids['http']}/panel")
    expect(d.page.locator("#enrich-run-first")).to_have_text("Run on the first 10 rows")
    return "#enrich-run-first"


def _running(d: Drawer, app) -> str:
    _cancel_open_runs(app, d.ids["http"])
    _load(d, f"/{d.ids['http']}/panel")
    d.page.locator("#enrich-run-first").click()
    expect(d.page.locator("#enrich-drawer .enrichment-progress")).to_be_visible()
    progress = d.page.locator("#enrich-drawer .enrichment-progress")
    expect(progress).to_have_attribute("data-status", re.compile("queued|running"))
    return "#run-cancel"


def _edit_waterfall(d: Drawer, app) -> str:
    _load(d, f"/{d.ids['waterfall']}/panel/edit")
    expect(d.page.locator("#enrich-steps li.enrich-step")).to_have_count(2)
    return "#enrich-edit-save"


def _edit_http(d: Drawer, app) -> str:
    _load(d, f"/{d.ids['http']}/panel/edit")
    expect(d.page.locator("#enrich-drawer input[name^=hdr_name_1_][value='X-Team']")).to_have_count(1)
    expect(d.page.locator("#enrich-out-field-1-1")).to_have_value("company")
    expect(d.page.locator("#enrich-drawer [data-http-line]").first).to_contain_text("domain=acct0.example.com")
    d.page.locator("#enrich-http-test-1").click()
    result = d.page.locator("#enrich-drawer .enrich-http-test")
    expect(result.locator("[data-test-status]")).to_have_text("HTTP 200")
    expect(result.locator("[data-test-value]")).to_have_text("Acct0")
    return "#enrich-edit-save"


def _edit_saved_undo(d: Drawer, app) -> tuple[str, str]:
    """Reorder the waterfall with the keyboard, save: the grid says so with Undo, and Undo puts it back."""
    page = d.page
    _load(d, f"/{d.ids['waterfall']}/panel/edit")
    steps = page.locator("#enrich-steps li.enrich-step")
    before = [steps.nth(i).get_attribute("data-step") for i in range(2)]
    page.locator("#enrich-step-1 button[value='down:1']").focus()
    page.keyboard.press("Enter")
    expect(steps.first).to_have_attribute("data-step", before[1])
    # htmx has finished the swap (its settling is when the moved step is given the focus back).
    page.wait_for_function("() => !document.querySelector('.htmx-request, .htmx-swapping, .htmx-settling')")
    # The moved step keeps the focus, so the next key press acts on it again.
    expect(page.locator("#enrich-step-2")).to_be_focused()
    page.keyboard.press("Tab")
    expect(page.locator("#enrich-step-2 button[value='up:2']")).to_be_focused()
    page.locator("#enrich-edit-save").click()
    toast = page.locator("#toasts [data-toast]", has_text="Saved “Work email”")
    expect(toast).to_be_visible()
    # The drawer opens on the saved column's runs and fields, beside the grid.
    expect(page.locator("#enrich-drawer-body .enrich-panel #enrich-title")).to_contain_text("Work email")
    page.screenshot(path=str(SCREENSHOTS / f"drawer-edit-saved-toast-{page.viewport_size['width']}.png"))
    with page.expect_navigation():  # the grid reloads its header after undoing a column's change
        toast.locator("[data-toast-undo]").click()
    page.wait_for_load_state("load")
    expect(page.locator("#toasts [data-toast]", has_text="Undid the enrichment setup change.")).to_be_visible()
    page.click("#enrich-open")
    expect(page.locator("#enrich-catalogue")).to_be_visible()
    _load(d, f"/{d.ids['waterfall']}/panel/edit")
    expect(steps.first).to_have_attribute("data-step", before[0])
    # Three grid loads in a row may find the server's live streams all taken by the earlier pages' (still
    # closing): that grid answers 503 by design and refreshes as it scrolls instead.
    page.problems[:] = [p for p in page.problems if not re.fullmatch(r"503 \S+/tables/\d+/live", p)]
    return "#enrich-edit-save", "#enrich-steps"


def _http_test_answer(d: Drawer, app) -> tuple[str, str]:
    _load(d, "/panel/http")
    drawer = d.page.locator("#enrich-drawer")
    drawer.locator("#enrich-http-url").fill(f"http://127.0.0.1:{d.ids['api_port']}/companies?domain=")
    drawer.locator("#enrich-insert-column").select_option(label="Website")
    drawer.locator("#enrich-insert").click()
    expect(drawer.locator("#enrich-http-preview [data-http-line]")).to_contain_text("domain=acct0.example.com")
    drawer.locator("#enrich-http-test").click()
    result = drawer.locator("#enrich-http-test-result")
    expect(result.locator("[data-test-status]")).to_have_text("HTTP 200")
    expect(result.locator("[data-test-body]")).to_contain_text('"name": "Acct0"')
    return "#enrich-http-test", "#enrich-http-test-result"


def _http_broken_placeholder(d: Drawer, app) -> tuple[str, str]:
    _load(d, "/panel/http")
    drawer = d.page.locator("#enrich-drawer")
    drawer.locator("#enrich-http-url").fill("https://api.example.com/companies?domain={{Company domain}}")
    drawer.locator("#enrich-http-url").press("Tab")
    alert = drawer.locator("#enrich-http-live [role=alert]")
    expect(alert).to_contain_text("“{{Company domain}}” is not a placeholder")
    return "#enrich-http-save", "#enrich-http-live"


def _ai_card(d: Drawer, app) -> str:
    d.page.locator("#enrich-ai-link").click()
    expect(d.page.locator("#enrich-drawer #ai-panel-form")).to_be_visible()
    expect(d.page.locator("#ai-panel-columns")).to_contain_text("{{Company domain}}")
    return "#ai-panel-save"


def _http_card(d: Drawer, app) -> str:
    _load(d, "/panel/http")
    drawer = d.page.locator("#enrich-drawer")
    drawer.locator("#enrich-http-url").fill("https://api.example.com/companies?domain=")
    drawer.locator("#enrich-insert-column").select_option(label="Website")
    drawer.locator("#enrich-insert").click()
    expect(drawer.locator("#enrich-http-preview [data-http-line]")).to_contain_text("domain=acct0.example.com")
    return "#enrich-http-save"


def _scrape_card(d: Drawer, app) -> str:
    _load(d, "/panel/setup?card=op:website.scrape")
    expect(d.page.locator("#enrich-scrape-test")).to_be_visible()
    d.page.evaluate(
        "url => htmx.ajax('GET', url, {target: '#enrich-scrape-preview', swap: 'outerHTML'})",
        f"{d.panel}/panel/scrape-preview/{d.ids['scrape']}",
    )
    expect(d.page.locator("#enrich-scrape-fields [data-scrape-field=description]")).to_contain_text("go-to-market")
    return "#enrich-save"


def _cell_attempts(d: Drawer, app) -> str:
    _load(d, f"/{d.ids['waterfall']}/rows/{d.ids['row']}/attempts")
    expect(d.page.locator("#enrich-drawer [data-attempt]").first).to_be_visible()
    return "#enrich-drawer .enrich-attempts"


def _cell_http(d: Drawer, app) -> str:
    _load(d, f"/{d.ids['http']}/rows/{d.ids['row']}/attempts")
    expect(d.page.locator("#enrich-drawer [data-cell-request]")).to_contain_text("domain=acct0.example.com")
    return "#enrich-drawer [data-cell-request]"


STATES = {
    "catalogue": _catalogue,
    "catalogue-search": _catalogue_search,
    "catalogue-category": _catalogue_category,
    "catalogue-nothing": _catalogue_nothing,
    "setup-waterfall": _setup_waterfall,
    "column": _column,
    "column-running": _running,
    "edit-waterfall": _edit_waterfall,
    "edit-http": _edit_http,
    "edit-saved-undo": _edit_saved_undo,
    "ai-card": _ai_card,
    "http-card": _http_card,
    "http-test-answer": _http_test_answer,
    "http-broken-placeholder": _http_broken_placeholder,
    "scrape-card": _scrape_card,
    "cell-attempts": _cell_attempts,
    "cell-http": _cell_http,
}

_INSIDE = """
(sel) => {
  const el = document.querySelector(sel);
  if (!el) { return "missing"; }
  const r = el.getBoundingClientRect(), w = document.documentElement.clientWidth, h = window.innerHeight;
  return (r.width > 0 && r.left >= -1 && r.top >= -1 && r.right <= w + 1 && r.bottom <= h + 1)
    ? "" : `${Math.round(r.left)},${Math.round(r.top)} ${Math.round(r.right)}x${Math.round(r.bottom)} in ${w}x${h}`;
}
"""


@pytest.mark.browser
@pytest.mark.parametrize("size", list(SIZES))
@pytest.mark.parametrize("state", list(STATES))
def test_the_drawer_state_fits_and_is_accessible(app, drawer, state, size):
    from tests.support.axe import severe_violations

    page = drawer.page
    width, height = SIZES[size]
    page.set_viewport_size({"width": width, "height": height})
    page.problems.clear()
    page.goto(drawer.grid_url)
    grid = page.locator(f"#table-{drawer.ids['table']}-grid")
    expect(grid.locator(".grid-row").first).to_be_visible()
    page.click("#enrich-open")
    expect(page.locator("#enrich-catalogue")).to_be_visible()

    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    primary = STATES[state](drawer, app)
    # A state may name the part to show (a test's answer lower in the drawer); others show the top.
    primary, shown = primary if isinstance(primary, tuple) else (primary, None)
    page.evaluate("document.getElementById('enrich-drawer').scrollTop = 0")
    if shown:
        page.locator(shown).first.scroll_into_view_if_needed()
    page.screenshot(path=str(SCREENSHOTS / f"drawer-{state}-{size}.png"))

    scroll = page.evaluate(
        "[document.documentElement.scrollWidth, document.documentElement.clientWidth,"
        " document.getElementById('enrich-drawer').scrollWidth, document.getElementById('enrich-drawer').clientWidth]"
    )
    assert scroll[0] <= scroll[1] + 1, f"the page scrolls sideways: {scroll}"
    assert scroll[2] <= scroll[3] + 1, f"the drawer scrolls sideways: {scroll}"
    assert page.evaluate(_INSIDE, "#enrich-drawer .enrich-close") == "", "the close button is off-screen"
    target = page.locator(primary).first
    target.scroll_into_view_if_needed()
    where = target.evaluate(
        "(el) => { const r = el.getBoundingClientRect(), w = document.documentElement.clientWidth;"
        " return [r.left, r.top, r.right, r.bottom, w, window.innerHeight]; }"
    )
    assert where[0] >= -1 and where[2] <= where[4] + 1, f"the primary action is cut off sideways: {where}"
    assert where[1] >= -1 and where[3] <= where[5] + 1, f"the primary action cannot be brought into view: {where}"
    if width >= 1000:
        beside = page.evaluate(
            """(g) => { const gr = document.getElementById(g).getBoundingClientRect();
                        const dr = document.getElementById('enrich-drawer').getBoundingClientRect();
                        return [gr.left, gr.right, dr.left, gr.width]; }""",
            f"table-{drawer.ids['table']}-grid",
        )
        assert beside[1] <= beside[2] + 1 and beside[3] >= 400, f"the grid is not beside the drawer: {beside}"
        expect(grid.locator(".grid-row").first).to_be_in_viewport()
    violations = severe_violations(page, within="#enrich-drawer")
    page.evaluate("document.querySelectorAll('[style=\"\"]').forEach(e => e.removeAttribute('style'))")
    assert violations == [], f"{state} at {size}"
    assert page.problems == [], f"{state} at {size}"
