"""Runs in the product: estimate, confirmation, start, the run page and its progress, cancel, roles, tenancy."""

from __future__ import annotations

import re
from html import unescape

import pytest
import sqlalchemy as sa

from morket.credits import service as credits
from morket.credits.models import LedgerEntry
from morket.enrichment import columns
from morket.enrichment.models import EnrichmentRun
from morket.enrichment.schemas import ColumnSetup
from morket.extensions import db as _db
from morket.providers.sandboxes import data
from morket.tables import service as tables
from morket.tables import storage
from morket.workspaces.models import Membership
from tests.enrichment.test_engine_support import finish_run
from tests.factories import UserFactory, csrf_token, login, workspace_with_owner

PEOPLE = (
    {"name": "First name", "type": "text"},
    {"name": "Last name", "type": "text"},
    {"name": "Domain", "type": "domain"},
)
FIRST = ("Ada", "Grace", "Alan", "Edsger", "Barbara", "Donald", "Frances")
RUN_URL = re.compile(r"/w/[^/]+/runs/(\d+)$")
FINDER = "Hunter: find a person's work email"


def _attempts(html: str) -> list[tuple[str, str, str, str]]:
    """A cell's attempts as its detail lists them, newest first: operation, provider, outcome and cost as shown."""
    found = []
    for operation, body in re.findall(r'<tr data-attempt="([^"]+)">(.*?)</tr>', html, re.S):
        cells = [unescape(re.sub(r"<[^>]+>", "", c)).strip() for c in re.findall(r"<td[^>]*>(.*?)</td>", body, re.S)]
        provider, outcome, _ms, cost, _note = cells
        found.append((operation, provider, outcome, cost))
    return found


@pytest.fixture
def people(db, quick):
    """A workspace with credits, its owner, a table of 12 people and an email column with a title output."""
    workspace, owner = workspace_with_owner()
    credits.grant(workspace.id, 1000, idempotency_key=f"test-{workspace.id}")
    table = tables.create_table(workspace, owner, "People", columns=PEOPLE)
    rows = [{"First name": FIRST[i % 7], "Last name": f"Doe{i}", "Domain": f"firm{i}.com"} for i in range(12)]
    row_ids = tables.insert_rows(workspace, owner, table, rows)
    ids = {c.name: c.id for c in table.live_columns}
    setup = ColumnSetup.model_validate(
        {
            "name": "Work email",
            "steps": [{"operation": "hunter.email_finder"}],
            "target": "email",
            "inputs": {"first_name": ids["First name"], "last_name": ids["Last name"], "domain": ids["Domain"]},
            "outputs": [{"field": "position", "new_column": "Position"}],
        }
    )
    column = columns.create_enrichment_column(workspace, owner, table, setup)
    return workspace, owner, table, column, rows, row_ids


def _member(workspace, role: str):
    user = UserFactory()
    _db.session.add(Membership(workspace_id=workspace.id, user_id=user.id, role=role))
    _db.session.flush()
    return user


def _start(client, workspace, table, column, **data: str) -> int:
    base = f"/w/{workspace.slug}/tables/{table.id}/enrichment/{column.id}"
    token = csrf_token(client, "/w")
    resp = client.post(f"{base}/runs", data={"csrf_token": token, "scope": "all", **data})
    assert resp.status_code == 303, resp.get_data(as_text=True)[:800]
    return int(RUN_URL.search(resp.headers["Location"]).group(1))


def test_estimate_start_progress_and_the_balance_drop_by_the_ledger(client, db, people):
    workspace, owner, table, column, rows, row_ids = people
    login(client, owner)
    base = f"/w/{workspace.slug}/tables/{table.id}/enrichment/{column.id}"
    estimate = client.get(f"{base}/estimate?scope=all", headers={"HX-Request": "true"})
    html = estimate.get_data(as_text=True)
    assert estimate.status_code == 200 and "<html" not in html
    assert "data-estimate-rows>12<" in html and "data-estimate-credits>24<" in html  # 12 rows × 2 credits
    assert "data-balance>1,000<" in html and 'id="enrichment-confirm"' not in html

    run_id = _start(client, workspace, table, column)
    page = client.get(f"/w/{workspace.slug}/runs/{run_id}")
    assert page.status_code == 200
    assert f'hx-get="/w/{workspace.slug}/runs/{run_id}/progress" hx-trigger="every 1s"' in page.get_data(as_text=True)
    assert client.get(f"/w/{workspace.slug}/runs/{run_id}/progress").status_code == 200

    run = finish_run(run_id)
    progress = client.get(f"/w/{workspace.slug}/runs/{run_id}/progress")
    body = progress.get_data(as_text=True)
    assert progress.status_code == 286 and "hx-trigger" not in body
    found = [data.person_found(r["First name"], r["Last name"], r["Domain"]) for r in rows]
    assert run.status == "completed" and run.succeeded == sum(found)
    assert f"data-succeeded>{sum(found)}<" in body and "data-remaining>0<" in body
    spent = -sum(
        e.amount
        for e in db.session.scalars(sa.select(LedgerEntry).where(LedgerEntry.run_id == run_id, LedgerEntry.amount < 0))
    )
    assert spent == run.credits_used == 2 * sum(found)
    assert f"data-credits-used>{spent}<" in body
    assert credits.balance(workspace.id) == 1000 - spent
    # The runs list shows it; the grid shows the found values with their state and provider.
    listing = client.get(f"/w/{workspace.slug}/runs").get_data(as_text=True)
    assert f'id="runs-{run_id}"' in listing and "Completed" in listing
    window = client.get(f"/w/{workspace.slug}/tables/{table.id}/rows", headers={"HX-Request": "true"})
    html = window.get_data(as_text=True)
    assert html.count("is-success") == sum(found)
    assert html.count("is-no_data") == len(found) - sum(found)
    assert 'title="Found · hunter"' in html
    first_found = row_ids[found.index(True)]
    attempts = client.get(f"{base}/rows/{first_found}/attempts").get_data(as_text=True)
    assert _attempts(attempts) == [("hunter.email_finder", FINDER, "hit HTTP 200", "2 credits")]


def test_confirmation_above_the_threshold(client, db, people, quick):
    workspace, owner, table, column, _rows, _ = people
    quick["ENRICHMENT_CONFIRM_CREDITS"] = 10
    login(client, owner)
    base = f"/w/{workspace.slug}/tables/{table.id}/enrichment/{column.id}"
    page = client.get(f"{base}/estimate?scope=all").get_data(as_text=True)
    assert 'id="enrichment-confirm"' in page and "I confirm spending up to 24 credits" in page
    token = csrf_token(client, f"{base}/estimate?scope=all")
    refused = client.post(f"{base}/runs", data={"csrf_token": token, "scope": "all"})
    assert refused.status_code == 409
    assert "confirm to start it" in refused.get_data(as_text=True)
    assert db.session.scalar(sa.select(sa.func.count()).select_from(EnrichmentRun)) == 0
    assert _start(client, workspace, table, column, confirm="1")


def test_empty_rows_and_selected_rows(client, db, people):
    workspace, owner, table, column, _rows, row_ids = people
    login(client, owner)
    run = finish_run(_start(client, workspace, table, column, scope="selected", row_ids=f"{row_ids[0]},{row_ids[1]}"))
    assert run.total == 2 and run.scope == "selected"
    base = f"/w/{workspace.slug}/tables/{table.id}/enrichment/{column.id}"
    html = client.get(f"{base}/estimate?scope=empty", headers={"HX-Request": "true"}).get_data(as_text=True)
    # Rows already enriched with a value are left out of an "empty rows" run.
    filled = sum(
        1
        for v in db.session.execute(
            sa.select(storage.storage_for(table).columns[column.id]).where(
                storage.storage_for(table).rows.c.id.in_(row_ids[:2])
            )
        ).scalars()
        if v is not None
    )
    assert f"data-estimate-rows>{12 - filled}<" in html
    bad = client.get(f"{base}/estimate?scope=selected&row_ids=abc", headers={"HX-Request": "true"})
    assert bad.status_code == 422 and "Select" in bad.get_data(as_text=True)
    assert client.get(f"{base}/estimate?scope=sideways").status_code == 422


def test_cancel_stops_the_run(client, db, people):
    workspace, owner, table, column, _rows, _ = people
    login(client, owner)
    run_id = _start(client, workspace, table, column)
    token = csrf_token(client, f"/w/{workspace.slug}/runs/{run_id}")
    resp = client.post(f"/w/{workspace.slug}/runs/{run_id}/cancel", data={"csrf_token": token})
    assert resp.status_code == 303
    db.session.expire_all()
    run = db.session.get(EnrichmentRun, run_id)
    assert run.status == "cancelled" and run.credits_used == 0
    assert client.get(f"/w/{workspace.slug}/runs/{run_id}/progress").status_code == 286
    assert credits.balance(workspace.id) == 1000


def test_viewers_watch_but_cannot_start_or_cancel(client, db, people):
    workspace, owner, table, column, _rows, row_ids = people
    login(client, owner)
    run_id = _start(client, workspace, table, column)
    login(client, _member(workspace, "viewer"))
    token = csrf_token(client, "/w")
    base = f"/w/{workspace.slug}/tables/{table.id}/enrichment/{column.id}"
    assert client.get(f"/w/{workspace.slug}/runs").status_code == 200
    page = client.get(f"/w/{workspace.slug}/runs/{run_id}")
    assert page.status_code == 200 and "Cancel run" not in page.get_data(as_text=True)
    assert client.get(f"/w/{workspace.slug}/runs/{run_id}/progress").status_code == 200
    assert client.get(f"{base}/rows/{row_ids[0]}/attempts").status_code == 200
    assert client.get(f"{base}/estimate?scope=all").status_code == 403
    assert client.post(f"{base}/runs", data={"csrf_token": token, "scope": "all"}).status_code == 403
    assert client.post(f"/w/{workspace.slug}/runs/{run_id}/cancel", data={"csrf_token": token}).status_code == 403
    db.session.expire_all()
    assert db.session.get(EnrichmentRun, run_id).status == "queued"
    assert db.session.scalar(sa.select(sa.func.count()).select_from(EnrichmentRun)) == 1
    # A billing admin has no enrichment pages at all.
    login(client, _member(workspace, "billing_admin"))
    assert client.get(f"/w/{workspace.slug}/runs/{run_id}").status_code == 403


def test_another_workspace_gets_404_everywhere(client, db, people):
    workspace, owner, table, column, _rows, row_ids = people
    login(client, owner)
    run_id = _start(client, workspace, table, column)
    other, stranger = workspace_with_owner()
    login(client, stranger)
    token = csrf_token(client, "/w")
    base = f"/w/{workspace.slug}/tables/{table.id}/enrichment/{column.id}"
    for path in (
        f"/w/{workspace.slug}/runs",
        f"/w/{workspace.slug}/runs/{run_id}",
        f"/w/{workspace.slug}/runs/{run_id}/progress",
        f"{base}/estimate?scope=all",
        f"{base}/rows/{row_ids[0]}/attempts",
        # Their own slug with our ids.
        f"/w/{other.slug}/runs/{run_id}",
        f"/w/{other.slug}/runs/{run_id}/progress",
        f"/w/{other.slug}/tables/{table.id}/enrichment/{column.id}/estimate?scope=all",
    ):
        assert client.get(path).status_code == 404, path
    for path in (f"{base}/runs", f"/w/{workspace.slug}/runs/{run_id}/cancel", f"/w/{other.slug}/runs/{run_id}/cancel"):
        assert client.post(path, data={"csrf_token": token, "scope": "all"}).status_code == 404, path
    db.session.expire_all()
    assert db.session.get(EnrichmentRun, run_id).status == "queued"


def test_grid_strip_of_running_runs_polls_until_none_is_left(client, db, people):
    workspace, owner, table, column, _rows, _ = people
    login(client, _member(workspace, "viewer"))
    url = f"/w/{workspace.slug}/tables/{table.id}/enrichment/active"
    grid = client.get(f"/w/{workspace.slug}/tables/{table.id}").get_data(as_text=True)
    assert f'hx-get="{url}" hx-trigger="load"' in grid and "js/enrichment.js" in grid
    idle = client.get(url)
    assert idle.status_code == 286 and "hx-trigger" not in idle.get_data(as_text=True)
    login(client, owner)
    run_id = _start(client, workspace, table, column)
    login(client, _member(workspace, "viewer"))
    busy = client.get(url)
    html = busy.get_data(as_text=True)
    assert busy.status_code == 200 and 'hx-trigger="every 2s"' in html
    assert f'data-run-id="{run_id}"' in html and "Enriching Work email: 0 of 12" in html
    finish_run(run_id)
    done = client.get(url)
    assert done.status_code == 286 and f'data-run-id="{run_id}"' not in done.get_data(as_text=True)
    other, stranger = workspace_with_owner()
    login(client, stranger)
    assert client.get(url).status_code == 404
    assert client.get(f"/w/{other.slug}/tables/{table.id}/enrichment/active").status_code == 404


def test_row_panel_lists_a_cells_attempts(client, db, people):
    workspace, owner, table, column, rows, row_ids = people
    login(client, owner)
    run_id = _start(client, workspace, table, column)
    finish_run(run_id)
    panel = client.get(f"/w/{workspace.slug}/tables/{table.id}/rows/{row_ids[0]}").get_data(as_text=True)
    url = f"/w/{workspace.slug}/tables/{table.id}/enrichment/{column.id}/rows/{row_ids[0]}/attempts"
    assert f'hx-get="{url}" hx-trigger="load"' in panel
    attempts = client.get(url).get_data(as_text=True)
    found = data.person_found(rows[0]["First name"], rows[0]["Last name"], rows[0]["Domain"])
    outcome, cost = ("hit HTTP 200", "2 credits") if found else ("not found HTTP 200", "0 credits")
    assert _attempts(attempts) == [("hunter.email_finder", FINDER, outcome, cost)]
    assert "State:" in attempts
    assert client.get(url.replace(f"/rows/{row_ids[0]}/", "/rows/999999/")).status_code == 404
