"""In a real browser: import a CSV into a table with a mapping and a dedupe key, watch it finish, export it."""

from __future__ import annotations

import csv
import io

import pytest
from playwright.sync_api import expect
from sqlalchemy import create_engine, text

from tests.browser.conftest import browser_page, committed_owner, live_server  # noqa: F401 - the browser fixtures
from tests.factories import PASSWORD

CSV = (
    "E-mail;Full name;Seats\r\nANN@acme.com ;Ann Updated;12\r\ncarl@gamma.io;Carl;3\r\n"
    "not an email;Bad;1\r\ndave@delta.io;=HYPERLINK(1);1\r\n"
)


@pytest.fixture
def dataops_env(app, tmp_path, monkeypatch):
    """Share one upload folder between the live server and the worker run by the test."""
    folder = str(tmp_path / "dataops")
    monkeypatch.setenv("MORKET_DATAOPS_DIR", folder)
    monkeypatch.setitem(app.config["MORKET"], "DATAOPS_DIR", folder)
    return folder


def _committed_team(app):
    from morket.extensions import db
    from morket.tables import service as tables

    with app.app_context():
        workspace, user = committed_owner(
            email="ivy@example.com", name="Ivy", slug="ivy-co", workspace_name="Ivy Co", password=PASSWORD
        )
        table = tables.create_table(
            workspace,
            user,
            "Leads",
            columns=[{"name": "Email", "type": "email"}, {"name": "Name", "type": "text"}],
        )
        tables.insert_rows(workspace, user, table, [{"Email": "ann@acme.com", "Name": "Ann"}])
        db.session.commit()
        return workspace.slug, table.id


def _work_jobs(app, services) -> None:
    """Act as the worker process: relay the outbox and run the queued jobs (RQ needs the main thread)."""
    from redis import Redis
    from rq import Queue, SimpleWorker

    from morket.core.jobs import QUEUES, relay_outbox

    conn = Redis.from_url(services["redis"])
    with app.app_context():
        relay_outbox()
        SimpleWorker([Queue(n, connection=conn) for n in QUEUES], connection=conn).work(
            burst=True, with_scheduler=False
        )
    conn.close()


@pytest.mark.browser
def test_import_with_mapping_and_dedupe_then_export(app, services, dataops_env, live_server, browser_page, tmp_path):  # noqa: F811
    slug, table_id = _committed_team(app)
    page, base = browser_page, live_server
    upload = tmp_path / "leads.csv"
    upload.write_bytes(b"\xef\xbb\xbf" + CSV.encode())
    try:
        page.goto(f"{base}/login")
        page.fill("#email", "ivy@example.com")
        page.fill("#password", PASSWORD)
        page.click("form button[type=submit]")
        page.goto(f"{base}/w/{slug}/tables/{table_id}/import")
        expect(page.locator("#import-upload h2")).to_contain_text("into Leads")
        page.set_input_files("#import-file", str(upload))
        page.click("#import-upload button[type=submit]")

        expect(page.locator("#import-preview")).to_contain_text("Ann Updated")
        expect(page.locator("main")).to_contain_text("semicolon separated")
        page.select_option("select[name=target_0]", label="Email (Email)")
        page.select_option("select[name=target_1]", label="Name (Text)")
        page.select_option("select[name=target_2]", "skip")
        page.check("input[name=dedupe][value='0']")
        page.check("input[name=on_duplicate][value=update]")
        page.click("#import-mapping-form button[type=submit]")
        expect(page.locator("progress")).to_be_visible()
        expect(page.locator("main")).to_contain_text("Waiting for a worker")
        _work_jobs(app, services)
        expect(page.locator("#import-needs-review")).to_contain_text("1 of 4 rows cannot be imported", timeout=10_000)
        page.click("button:has-text('Import the other 3 rows')")
        _work_jobs(app, services)
        expect(page.locator("#import-done")).to_contain_text("2 rows added, 1 updated", timeout=10_000)

        page.goto(f"{base}/w/{slug}/imports")
        expect(page.locator("#data-runs")).to_contain_text("leads.csv")
        page.select_option("select[name=table_id]", label="Leads")
        with page.expect_download() as download:
            page.click("#export-table button[type=submit]")
        body = download.value.path().read_text(encoding="utf-8")
        assert list(csv.reader(io.StringIO(body, newline=""))) == [
            ["Email", "Name"],
            ["ann@acme.com", "Ann Updated"],
            ["carl@gamma.io", "Carl"],
            ["dave@delta.io", "'=HYPERLINK(1)"],
        ]
        assert page.problems == []
    finally:
        engine = create_engine(app.config["SQLALCHEMY_DATABASE_URI"])
        with engine.begin() as conn:
            for (name,) in conn.execute(text("SELECT tablename FROM pg_tables WHERE schemaname = 'ut'")).all():
                conn.execute(text(f"DROP TABLE ut.{name}"))
            conn.execute(text("TRUNCATE tables, data_runs CASCADE"))
        engine.dispose()
