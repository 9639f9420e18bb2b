"""Inbound sources against a live server: 20 concurrent posters lose no row, and the open grid shows arrivals."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import expect
from sqlalchemy import text

from tests.browser.conftest import browser_page, committed_owner, live_server  # noqa: F401 - shared fixtures

PASSWORD = "inbound live passphrase"
POSTERS = 20
ROWS = 50_000
BATCH = 250
SCREENSHOTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "screenshots"


@pytest.fixture
def live_source(app, live_server):  # noqa: F811
    """A committed workspace, a contacts table and a source mapping email and name; cleaned up after."""
    from morket.extensions import db
    from morket.inbound import service
    from morket.tables import service as tables

    with app.app_context():
        workspace, user = committed_owner(
            email="inbound@example.com", name="Ina", slug="inbound-co", workspace_name="Inbound Co", password=PASSWORD
        )
        table = tables.create_table(
            workspace, user, "Leads", columns=[{"name": "Email", "type": "email"}, {"name": "Name", "type": "text"}]
        )
        source, secret = service.create_source(workspace, user, table, "Load test")
        service.update_source(
            workspace, user, source, columns={"Email": "$.email", "Name": "$.name"}, rate_per_minute=service.RATE_MAX
        )
        db.session.commit()
        info = {
            "workspace_id": workspace.id,
            "slug": workspace.slug,
            "table_id": table.id,
            "source_id": source.id,
            "url": f"{live_server}/api/v1/hooks/in/{source.token}",
            "secret": secret,
            "rows": f"ut.{table.storage_name}",
            "email": next(c.storage_name for c in table.live_columns if c.name == "Email"),
            "email_id": next(c.id for c in table.live_columns if c.name == "Email"),
        }
    try:
        yield info
    finally:
        from morket.workspaces.models import Workspace

        with app.app_context():
            workspace = db.session.get(Workspace, info["workspace_id"])
            tables.delete_table(workspace, None, tables.get_table_or_404(workspace, info["table_id"]))
            db.session.commit()


def _post_all(info: dict, batches: list[list[dict]]) -> list[int]:
    """Send the batches from ``POSTERS`` threads at once; return every status code."""
    statuses: list[int] = []
    lock = threading.Lock()
    start = threading.Barrier(POSTERS)
    share = [batches[i::POSTERS] for i in range(POSTERS)]

    def poster(mine: list[list[dict]]) -> None:
        with httpx.Client(timeout=120) as client:
            start.wait()
            for batch in mine:
                resp = client.post(
                    info["url"],
                    content=json.dumps(batch),
                    headers={"Content-Type": "application/json", "X-Morket-Secret": info["secret"]},
                )
                with lock:
                    statuses.append(resp.status_code)

    threads = [threading.Thread(target=poster, args=(mine,)) for mine in share]
    for t in threads:
        t.start()
    for t in threads:
        t.join(300)
    return statuses


def _table_state(app, info: dict) -> tuple[int, set[str], int]:
    from morket.extensions import db

    with app.app_context():
        emails = set(db.session.execute(text(f"SELECT lower({info['email']}) FROM {info['rows']}")).scalars())  # noqa: S608
        count = db.session.execute(text(f"SELECT count(*) FROM {info['rows']}")).scalar_one()  # noqa: S608
        kept = db.session.execute(text("SELECT row_count FROM tables WHERE id = :t"), {"t": info["table_id"]}).scalar()
    return count, emails, kept


def test_twenty_concurrent_posters_send_fifty_thousand_rows_and_none_is_lost(app, live_source):
    rows = [{"email": f"lead{i}@example.com", "name": f"Lead {i}"} for i in range(ROWS)]
    batches = [rows[i : i + BATCH] for i in range(0, ROWS, BATCH)]
    statuses = _post_all(live_source, batches)
    assert statuses == [200] * len(batches)
    count, emails, kept = _table_state(app, live_source)
    assert count == ROWS and kept == ROWS
    assert emails == {r["email"] for r in rows}


def test_concurrent_posters_with_an_upsert_key_leave_one_row_per_key(app, live_source):
    from morket.extensions import db
    from morket.inbound import service
    from morket.inbound.models import InboundSource
    from morket.workspaces.models import Workspace

    with app.app_context():
        workspace = db.session.get(Workspace, live_source["workspace_id"])
        source = db.session.get(InboundSource, live_source["source_id"])
        service.update_source(workspace, None, source, upsert_column_id=live_source["email_id"])
        db.session.commit()
    distinct = 20_000
    # 50,000 records over 20,000 keys, each key sent in several spellings by different posters.
    rows = [
        {"email": (f"Lead{i % distinct}@Example.com" if i % 3 else f" lead{i % distinct}@example.com "), "name": str(i)}
        for i in range(ROWS)
    ]
    batches = [rows[i : i + BATCH] for i in range(0, ROWS, BATCH)]
    statuses = _post_all(live_source, batches)
    assert statuses == [200] * len(batches)
    count, emails, kept = _table_state(app, live_source)
    assert count == distinct and kept == distinct
    assert emails == {f"lead{i}@example.com" for i in range(distinct)}
    with app.app_context():
        source = db.session.get(InboundSource, live_source["source_id"])
        assert source.rows_inserted == distinct and source.rows_inserted + source.rows_updated <= ROWS


def test_the_open_grid_shows_posted_rows_without_a_reload(app, live_server, live_source, browser_page):  # noqa: F811
    page = browser_page
    page.goto(f"{live_server}/login")
    page.fill("#email", "inbound@example.com")
    page.fill("#password", PASSWORD)
    page.click("form button[type=submit]")
    page.goto(f"{live_server}/w/{live_source['slug']}/tables/{live_source['table_id']}")
    expect(page.locator("[data-grid-count]")).to_have_text("0 rows")
    navigations: list[str] = []
    page.on("framenavigated", lambda frame: navigations.append(frame.url) if frame == page.main_frame else None)
    resp = httpx.post(
        live_source["url"],
        json=[{"email": "arrived@example.com", "name": "Arrived"}, {"email": "second@example.com", "name": "Second"}],
        headers={"X-Morket-Secret": live_source["secret"]},
    )
    assert resp.status_code == 200
    grid = page.locator(f"#table-{live_source['table_id']}-grid")
    expect(grid.locator(".grid-row").first).to_contain_text("arrived@example.com", timeout=10_000)
    expect(page.locator("[data-grid-count]")).to_have_text("2 rows")
    expect(page.locator(".grid-norows")).to_be_hidden()
    assert navigations == []
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / "inbound-grid-live.png"))
    assert page.problems == []


def test_the_source_page_shows_mapping_preview_and_refused_payloads(app, live_server, live_source, browser_page):  # noqa: F811
    page = browser_page
    posted = httpx.post(
        live_source["url"],
        json=[{"mail": "no-path@example.com", "first": "Nope"}],
        headers={"X-Morket-Secret": live_source["secret"]},
    )
    assert posted.status_code == 422
    assert (
        httpx.post(
            live_source["url"],
            json={"email": "ok@example.com", "name": "Okay"},
            headers={"X-Morket-Secret": live_source["secret"]},
        ).status_code
        == 200
    )
    page.goto(f"{live_server}/login")
    page.fill("#email", "inbound@example.com")
    page.fill("#password", PASSWORD)
    page.click("form button[type=submit]")
    page.goto(
        f"{live_server}/w/{live_source['slug']}/tables/{live_source['table_id']}/inbound/{live_source['source_id']}"
    )
    expect(page.locator("#inbound-url")).to_contain_text("/api/v1/hooks/in/")
    expect(page.locator("#preview-table")).to_contain_text("ok@example.com")
    expect(page.locator("#add-columns-form")).to_have_count(0)
    expect(page.locator("#failures")).to_contain_text("matched none of the mapped paths")
    page.set_viewport_size({"width": 1280, "height": 1400})
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / "inbound-source-page.png"), full_page=True)
    page.locator("#failures button[type=submit]").first.click()
    expect(page.locator("#failures")).to_contain_text("matched none", timeout=5000)
    assert page.problems == []
