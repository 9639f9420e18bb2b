"""Background exports: the job's file, the emailed link, expiry and clean-up, tenancy, roles, the JSON API."""

from __future__ import annotations

import csv
import io
import re
import time
from datetime import timedelta

import pytest
import sqlalchemy as sa
from itsdangerous import TimestampSigner, URLSafeTimedSerializer

from morket.core.db import utcnow
from morket.dataops import exports
from morket.dataops.models import DataRun
from morket.tables import service as tables
from morket.tables.models import USER_SCHEMA
from tests.api.conftest import bearer
from tests.factories import PASSWORD, MembershipFactory, login

ROWS = 40
LINK = re.compile(r"http://localhost(/w/\S+/exports/download/\S+)")


@pytest.fixture
def small_threshold(app, monkeypatch):
    """Make any export above five rows a background one."""
    monkeypatch.setitem(app.config["MORKET"], "EXPORT_BACKGROUND_ROWS", 5)


def _table(workspace, user):
    table = tables.create_table(
        workspace,
        user,
        "Pipeline",
        columns=[
            {"name": "Company", "type": "text"},
            {"name": "Amount", "type": "number"},
            {"name": "Won", "type": "checkbox"},
        ],
    )
    rows = [{"Company": f"Company {i}", "Amount": (i * 37) % 101, "Won": i % 2 == 0} for i in range(ROWS)]
    tables.insert_rows(workspace, user, table, rows)
    company, amount, won = (c.id for c in table.live_columns)
    view = tables.create_view(
        workspace,
        user,
        table,
        "Won by amount",
        sort=[{"column_id": amount, "dir": "desc"}],
        filters={"op": "and", "conditions": [{"column_id": won, "operator": "is_true"}]},
        hidden_column_ids=[won],
    )
    return table, view


def _view_rows_by_sql(db, table) -> list[list[str]]:
    """The rows the view shows, read straight from the table's storage with plain SQL."""
    company, amount, won = (c.storage_name for c in table.live_columns)
    sql = (
        f"SELECT t.{company}, t.{amount}::text FROM {USER_SCHEMA}.{table.storage_name} AS t "  # noqa: S608 - generated names
        f"WHERE t.{won} ORDER BY t.{amount} DESC, t.pos"
    )
    return [list(row) for row in db.session.execute(sa.text(sql))]


def _only_export(db, workspace) -> DataRun:
    return db.session.scalars(
        sa.select(DataRun).where(DataRun.workspace_id == workspace.id, DataRun.kind == "export")
    ).one()


def _start(client, workspace, table, view, query: str = ""):
    return client.get(f"/w/{workspace.slug}/tables/{table.id}/export.csv?view={view.id}{query}")


def test_job_writes_the_view_and_the_emailed_link_downloads_the_same_bytes(
    client, db, owner, small_threshold, run_jobs, smtp_server
):
    workspace, user = owner
    table, view = _table(workspace, user)
    login(client, user)

    resp = _start(client, workspace, table, view)
    assert resp.status_code == 302 and resp.headers["Location"].endswith(f"/w/{workspace.slug}/exports")
    page = client.get(resp.headers["Location"]).get_data(as_text=True)
    assert "runs in the background" in page and "waiting" in page
    run = _only_export(db, workspace)
    assert (run.status, run.settings["rows_expected"]) == ("queued", ROWS // 2)

    assert run_jobs() >= 1
    db.session.refresh(run)
    assert (run.status, run.rows_out) == ("done", ROWS // 2)
    on_disk = exports.export_path(run).read_bytes()
    assert run.size_bytes == len(on_disk)
    parsed = list(csv.reader(io.StringIO(on_disk.decode("utf-8"), newline="")))
    assert parsed[0] == ["Company", "Amount"]
    assert parsed[1:] == _view_rows_by_sql(db, table)

    mail = smtp_server.wait_for(user.email)[-1]
    assert "is ready" in mail.subject and f"{ROWS // 2:,} rows" in mail.text
    path = LINK.search(mail.text).group(1)
    download = client.get(path)
    assert download.status_code == 200 and download.mimetype == "text/csv"
    assert download.get_data() == on_disk
    assert "attachment" in download.headers["Content-Disposition"]

    listing = client.get(f"/w/{workspace.slug}/exports/list")
    assert listing.status_code == 286  # nothing running: the page stops polling
    assert f'id="export-{run.id}-download"' in listing.get_data(as_text=True)


def test_the_job_writes_crlf_on_every_line_of_the_file(client, db, owner, small_threshold, run_jobs):
    workspace, user = owner
    table, view = _table(workspace, user)
    login(client, user)
    _start(client, workspace, table, view, "&excel=1")
    run_jobs()
    run = _only_export(db, workspace)
    db.session.refresh(run)

    on_disk = exports.export_path(run).read_bytes()

    assert on_disk.startswith(b"\xef\xbb\xbfCompany,Amount\r\n")
    assert on_disk.endswith(b"\r\n")
    assert on_disk.count(b"\n") == on_disk.count(b"\r\n") == ROWS // 2 + 1
    assert run.message == f"{ROWS // 2} rows exported."


def test_small_exports_still_stream_at_once(client, db, owner, app, monkeypatch):
    workspace, user = owner
    table, view = _table(workspace, user)
    monkeypatch.setitem(app.config["MORKET"], "EXPORT_BACKGROUND_ROWS", ROWS // 2)
    login(client, user)
    resp = _start(client, workspace, table, view)
    assert resp.status_code == 200 and resp.mimetype == "text/csv"
    assert len(list(csv.reader(io.StringIO(resp.get_data(as_text=True))))) == ROWS // 2 + 1
    assert "background" not in _only_export(db, workspace).settings


def _ready_export(client, db, workspace, user, run_jobs):
    table, view = _table(workspace, user)
    login(client, user)
    _start(client, workspace, table, view)
    run_jobs()
    run = _only_export(db, workspace)
    db.session.refresh(run)
    return run


def test_forged_and_expired_links_are_refused(client, db, owner, small_threshold, run_jobs, app):
    workspace, user = owner
    run = _ready_export(client, db, workspace, user, run_jobs)
    token = exports.link_token(run)
    base = f"/w/{workspace.slug}/exports/download/"

    assert client.get(base + token[:-3] + "abc").status_code == 404
    foreign = URLSafeTimedSerializer("another secret", salt=exports.LINK_SALT).dumps({"run": run.id})
    assert client.get(base + foreign).status_code == 404

    class EightDaysAgo(TimestampSigner):
        def get_timestamp(self) -> int:
            return int(time.time()) - 8 * 86400

    old = URLSafeTimedSerializer(app.config["SECRET_KEY"], salt=exports.LINK_SALT, signer=EightDaysAgo)
    resp = client.get(base + old.dumps({"run": run.id, "workspace": workspace.id}))
    assert resp.status_code == 410 and "This download link has expired" in resp.get_data(as_text=True)

    assert client.get(base + token).status_code == 200
    run.finished_at = utcnow() - timedelta(days=8)
    db.session.flush()
    resp = client.get(base + token)  # a fresh link cannot outlive the file's seven days
    assert resp.status_code == 410 and "expired" in resp.get_data(as_text=True)


def test_clean_up_deletes_expired_files_and_the_page_says_so(client, db, owner, small_threshold, run_jobs):
    workspace, user = owner
    run = _ready_export(client, db, workspace, user, run_jobs)
    path = exports.export_path(run)
    assert exports.delete_expired_exports() == 0 and path.exists()

    run.finished_at = utcnow() - timedelta(days=7, minutes=1)
    db.session.flush()
    assert exports.delete_expired_exports() == 1
    assert not path.exists() and exports.export_state(run) == "expired"
    assert exports.delete_expired_exports() == 0
    page = client.get(f"/w/{workspace.slug}/exports").get_data(as_text=True)
    assert "Link expired" in page and f'id="export-{run.id}-download"' not in page
    resp = client.get(f"/w/{workspace.slug}/exports/download/{exports.link_token(run)}")
    assert resp.status_code == 410 and "See your exports" in resp.get_data(as_text=True)


def test_another_workspace_gets_404(client, new_client, db, owner, stranger, small_threshold, run_jobs):
    workspace, user = owner
    run = _ready_export(client, db, workspace, user, run_jobs)
    token = exports.link_token(run)
    other, intruder = stranger
    browser = new_client()
    login(browser, intruder)
    assert browser.get(f"/w/{workspace.slug}/exports/download/{token}").status_code == 404
    assert browser.get(f"/w/{other.slug}/exports/download/{token}").status_code == 404
    assert run.file_name not in browser.get(f"/w/{other.slug}/exports").get_data(as_text=True)
    access = _token(browser, intruder, other)
    assert browser.get(f"/api/v1/exports/{run.id}", headers=bearer(access)).status_code == 404
    assert browser.get(f"/api/v1/exports/{run.id}/download", headers=bearer(access)).status_code == 404
    resp = browser.post(f"/api/v1/tables/{run.table_id}/exports", json={}, headers=bearer(access))
    assert resp.status_code == 404


def test_viewers_can_export_but_billing_admins_cannot(client, new_client, db, owner, small_threshold, run_jobs):
    workspace, user = owner
    table, view = _table(workspace, user)
    viewer = MembershipFactory(workspace=workspace, role="viewer").user
    billing = MembershipFactory(workspace=workspace, role="billing_admin").user
    login(client, viewer)
    assert _start(client, workspace, table, view).status_code == 302
    run_jobs()
    run = _only_export(db, workspace)
    db.session.refresh(run)
    assert (run.status, run.created_by_id) == ("done", viewer.id)
    assert client.get(f"/w/{workspace.slug}/exports/download/{exports.link_token(run)}").status_code == 200

    browser = new_client()
    login(browser, billing)
    assert _start(browser, workspace, table, view).status_code == 403
    assert browser.get(f"/w/{workspace.slug}/exports").status_code == 403
    assert browser.get(f"/w/{workspace.slug}/exports/download/{exports.link_token(run)}").status_code == 403
    access = _token(browser, billing, workspace)
    assert browser.get(f"/api/v1/exports/{run.id}/download", headers=bearer(access)).status_code == 403
    assert browser.post(f"/api/v1/tables/{table.id}/exports", json={}, headers=bearer(access)).status_code == 403


def _token(client, user, workspace) -> str:
    resp = client.post(
        "/api/v1/auth/token", json={"email": user.email, "password": PASSWORD, "workspace": workspace.slug}
    )
    return resp.get_json()["data"]["access_token"]


def test_api_exports_end_to_end(client, db, owner, run_jobs):
    workspace, user = owner
    table, view = _table(workspace, user)
    access = _token(client, user, workspace)

    resp = client.post(
        f"/api/v1/tables/{table.id}/exports", json={"view_id": view.id, "excel": True}, headers=bearer(access)
    )
    assert resp.status_code == 202, resp.get_json()
    data = resp.get_json()["data"]
    assert (data["state"], data["rows_expected"], data["download_url"]) == ("queued", ROWS // 2, None)
    status_path = data["status_url"].removeprefix("http://localhost")
    assert status_path == f"/api/v1/exports/{data['id']}"
    early = client.get(f"{status_path}/download", headers=bearer(access))
    assert early.status_code == 409 and early.get_json()["error"]["code"] == "conflict"

    run_jobs()
    data = client.get(status_path, headers=bearer(access)).get_json()["data"]
    assert (data["state"], data["rows_out"]) == ("ready", ROWS // 2)
    download = client.get(data["download_url"].removeprefix("http://localhost"), headers=bearer(access))
    assert download.status_code == 200 and download.mimetype == "text/csv"
    body = download.get_data()
    assert body.startswith(b"\xef\xbb\xbfCompany,Amount\r\n")
    assert body == exports.export_path(db.session.get(DataRun, data["id"])).read_bytes()
    rows = list(csv.reader(io.StringIO(body.decode("utf-8-sig"), newline="")))
    assert rows[1:] == _view_rows_by_sql(db, table)
    assert client.get(data["download_url"].removeprefix("http://localhost")).status_code == 401


def test_api_refuses_bad_export_requests_clearly(client, db, owner):
    workspace, user = owner
    table, _ = _table(workspace, user)
    other, _ = _table(workspace, user)
    foreign_view = tables.create_view(workspace, user, other, "Elsewhere")
    access = _token(client, user, workspace)
    url = f"/api/v1/tables/{table.id}/exports"
    resp = client.post(url, json={"format": "xlsx"}, headers=bearer(access))
    assert resp.status_code == 422 and "format" in resp.get_json()["error"]["fields"]
    resp = client.post(url, json={"view_id": "many"}, headers=bearer(access))
    assert resp.status_code == 422
    assert client.post(url, json={"view_id": foreign_view.id}, headers=bearer(access)).status_code == 404
    assert client.get("/api/v1/exports/999999999", headers=bearer(access)).status_code == 404
    imported = DataRun(workspace_id=workspace.id, kind="import", status="done", file_name="x.csv")
    db.session.add(imported)
    db.session.flush()
    assert client.get(f"/api/v1/exports/{imported.id}", headers=bearer(access)).status_code == 404


def test_an_export_of_a_deleted_table_fails_with_a_message(client, db, owner, small_threshold, run_jobs):
    workspace, user = owner
    table, view = _table(workspace, user)
    login(client, user)
    _start(client, workspace, table, view)
    run = _only_export(db, workspace)
    run.table_id = None  # the table was deleted before a worker picked the job up
    db.session.flush()
    run_jobs()
    db.session.refresh(run)
    assert (run.status, exports.export_state(run)) == ("failed", "failed")
    page = client.get(f"/w/{workspace.slug}/exports").get_data(as_text=True)
    assert "That table does not exist." in page
    assert client.get(f"/w/{workspace.slug}/exports/download/{exports.link_token(run)}").status_code == 410
