"""AI columns through the JSON API and the pages: create, try on 5 rows, run with a budget, the monthly
budget; bad input is a 422 naming the problem, another workspace gets 404, roles are enforced, forms
need CSRF, and a model's answer is shown escaped."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from morket.credits.models import LedgerEntry
from morket.extensions import db
from morket.runs.models import Run
from tests.ai.column_support import INDUSTRIES, ai, companies_table, finish  # noqa: F401 - ai is a fixture
from tests.credentials.conftest import access_token, bearer, make_team  # noqa: F401 - access_token is a fixture
from tests.enrichment.test_engine_support import grant
from tests.factories import csrf_token, login


@pytest.fixture
def team(db, ai):  # noqa: F811
    team = make_team("AI columns")
    grant(team.workspace, 50_000)
    team.table = companies_table(team.workspace, team.users["owner"], 20)
    db.session.commit()
    return team


@pytest.fixture
def stranger(db):
    return make_team("Not theirs")


def _setup(**over):
    return {"name": "Industry", "prompt": "Which industry? {{Description}}", "output_type": "choice",
            "options": list(INDUSTRIES), "max_tokens": 64, **over}  # fmt: skip


def _create(client, token, table_id, **over):
    return client.post(f"/api/v1/tables/{table_id}/ai-columns", json=_setup(**over), headers=bearer(token))


def test_api_create_try_estimate_run_and_poll(client, team, access_token):  # noqa: F811
    token = access_token(team.users["member"], team.workspace)
    resp = _create(client, token, team.table.id)
    assert resp.status_code == 201, resp.get_json()
    column = resp.get_json()["data"]
    assert column["output_type"] == "choice" and column["inputs"] == {"Description": column["inputs"]["Description"]}
    url = f"/api/v1/tables/{team.table.id}/ai-columns/{column['id']}"
    assert (
        client.get(f"/api/v1/tables/{team.table.id}/ai-columns", headers=bearer(token)).get_json()["data"][0]["id"]
        == column["id"]
    )
    tried = client.post(f"{url}/dry-runs", headers=bearer(token))
    assert tried.status_code == 201, tried.get_json()
    dry = tried.get_json()["data"]
    assert len(dry["samples"]) == 5 and all(s["value"] in INDUSTRIES and s["cost"] > 0 for s in dry["samples"])
    assert all("<data>" in s["prompt"] for s in dry["samples"])
    charged = db.session.scalar(sa.select(sa.func.sum(-LedgerEntry.amount)).where(
        LedgerEntry.workspace_id == team.workspace.id, LedgerEntry.idempotency_key.like("ai-try:%")))  # fmt: skip
    assert charged == dry["credits"] > 0
    estimate = client.get(f"{url}/estimate", headers=bearer(token)).get_json()["data"]
    assert estimate["rows"] == 20 and estimate["estimate_credits"] == dry["estimate_credits"]
    started = client.post(f"{url}/runs", json={"budget_credits": 10_000}, headers=bearer(token))
    assert started.status_code == 202, started.get_json()
    run_id = started.get_json()["data"]["id"]
    finish(run_id)
    polled = client.get(f"/api/v1/ai-runs/{run_id}", headers=bearer(token)).get_json()["data"]
    assert (polled["status"], polled["succeeded"], polled["budget_credits"]) == ("completed", 20, 10_000)


@pytest.mark.parametrize(
    ("over", "needle"),
    [
        ({"prompt": "Classify {{Nope}}"}, "not a column"),
        ({"prompt": "No columns named"}, "at least one column"),
        ({"options": ["Only one"]}, "at least two options"),
        ({"output_type": "json", "fields": []}, "at least one field"),
        ({"output_type": "json", "fields": [{"name": "bad name!", "type": "text"}]}, "cannot be a field name"),
        ({"temperature": 5}, "temperature"),
        ({"output_type": "poem"}, "output_type"),
        ({"schema": {"type": "object"}}, "schema"),
    ],
)
def test_bad_setups_are_422_and_add_no_column(client, team, access_token, over, needle):  # noqa: F811
    token = access_token(team.users["owner"], team.workspace)
    before = len(team.table.live_columns)
    resp = _create(client, token, team.table.id, **over)
    assert resp.status_code == 422, resp.get_json()
    assert needle in str(resp.get_json()["error"])
    db.session.expire_all()
    from morket.tables import service as tables

    assert len(tables.get_table_or_404(team.workspace, team.table.id).live_columns) == before


def test_a_bad_run_budget_is_422(client, team, access_token):  # noqa: F811
    token = access_token(team.users["owner"], team.workspace)
    column = _create(client, token, team.table.id).get_json()["data"]
    resp = client.post(f"/api/v1/tables/{team.table.id}/ai-columns/{column['id']}/runs", json={"budget_credits": 0},
                       headers=bearer(token))  # fmt: skip
    assert resp.status_code == 422
    assert db.session.scalar(sa.select(sa.func.count()).select_from(Run).where(Run.kind == "ai")) == 0


def test_viewers_read_but_cannot_create_or_run_and_only_managers_set_the_monthly_budget(client, team, access_token):  # noqa: F811
    owner = access_token(team.users["owner"], team.workspace)
    viewer = access_token(team.users["viewer"], team.workspace)
    member = access_token(team.users["member"], team.workspace)
    column = _create(client, owner, team.table.id).get_json()["data"]
    assert _create(client, viewer, team.table.id).status_code == 403
    url = f"/api/v1/tables/{team.table.id}/ai-columns/{column['id']}"
    assert client.get(url, headers=bearer(viewer)).status_code == 200
    assert client.post(f"{url}/dry-runs", headers=bearer(viewer)).status_code == 403
    assert client.post(f"{url}/runs", json={}, headers=bearer(viewer)).status_code == 403
    assert client.put("/api/v1/ai-budget", json={"monthly_credits": 10}, headers=bearer(member)).status_code == 403
    resp = client.put("/api/v1/ai-budget", json={"monthly_credits": 10}, headers=bearer(owner))
    assert resp.status_code == 200 and resp.get_json()["data"]["monthly_credits"] == 10
    assert client.put("/api/v1/ai-budget", json={"monthly_credits": -1}, headers=bearer(owner)).status_code == 422


def test_another_workspace_gets_404(client, team, stranger, access_token):  # noqa: F811
    owner = access_token(team.users["owner"], team.workspace)
    column = _create(client, owner, team.table.id).get_json()["data"]
    run = client.post(f"/api/v1/tables/{team.table.id}/ai-columns/{column['id']}/runs", json={},
                      headers=bearer(owner)).get_json()["data"]  # fmt: skip
    other = access_token(stranger.users["owner"], stranger.workspace)
    url = f"/api/v1/tables/{team.table.id}/ai-columns/{column['id']}"
    assert client.get(url, headers=bearer(other)).status_code == 404
    assert client.post(f"{url}/dry-runs", headers=bearer(other)).status_code == 404
    assert client.get(f"/api/v1/ai-runs/{run['id']}", headers=bearer(other)).status_code == 404
    assert client.post(f"/api/v1/ai-runs/{run['id']}/cancel", headers=bearer(other)).status_code == 404
    login(client, stranger.users["owner"])
    page = f"/w/{stranger.workspace.slug}/tables/{team.table.id}/ai/{column['id']}"
    assert client.get(page).status_code == 404


def test_pages_create_try_and_show_answers_escaped(client, team):
    owner = team.users["owner"]
    from morket.tables import rows

    rows.insert_rows(team.workspace, owner, team.table, [{"Description": "<script>alert(1)</script>"}])
    db.session.commit()
    login(client, owner)
    new = f"/w/{team.workspace.slug}/tables/{team.table.id}/ai/new"
    token = csrf_token(client, new)
    form = {"name": "Summary", "prompt": "Sum up {{Description}}", "output_type": "text", "model_choice": "|",
            "temperature": "0", "max_tokens": "64"}  # fmt: skip
    assert client.post(new, data=form).status_code == 400  # no CSRF token
    bad = client.post(new, data={**form, "prompt": "Sum up {{Nope}}", "csrf_token": token})
    assert bad.status_code == 422 and "not a column of this table" in bad.get_data(as_text=True)
    saved = client.post(new, data={**form, "csrf_token": token})
    assert saved.status_code == 303, saved.get_data(as_text=True)[:500]
    page = saved.headers["Location"]
    resp = client.post(f"{page}/try", data={"csrf_token": csrf_token(client, page)})
    assert resp.status_code == 303
    html = client.get(page).get_data(as_text=True)
    # The sandbox answers a text schema with the data's first line: the row's description.
    assert 'id="ai-samples"' in html and "This try cost" in html and "A firm from town 0" in html
    # A try on a table whose first row is the script shows it escaped.
    from morket.ai import column_runs, columns
    from morket.tables import service as tables

    sheet = tables.create_table(team.workspace, owner, "Scripts", columns=[{"name": "Description", "type": "text"}])
    rows.insert_rows(team.workspace, owner, sheet, [{"Description": "<script>alert(1)</script>"}])
    column = columns.create_ai_column(team.workspace, owner, sheet, columns.parse_setup(
        {"name": "Summary", "prompt": "Sum up {{Description}}", "output_type": "text"}))  # fmt: skip
    dry = column_runs.try_rows(team.workspace, owner, sheet, column)
    db.session.commit()
    assert "<script>alert(1)</script>" in dry.samples[0]["value"]
    html = client.get(f"/w/{team.workspace.slug}/tables/{sheet.id}/ai/{column.id}").get_data(as_text=True)
    assert "<script>alert(1)</script>" not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html


def test_the_catalogue_offers_an_ai_column(client, team):
    login(client, team.users["member"])
    html = client.get(f"/w/{team.workspace.slug}/tables/{team.table.id}/enrichment/panel").get_data(as_text=True)
    assert f"/w/{team.workspace.slug}/tables/{team.table.id}/ai/new" in html


def test_the_grid_shows_an_ai_column_and_its_states(client, team):
    from morket.ai import column_runs, columns

    owner = team.users["owner"]
    column = columns.create_ai_column(team.workspace, owner, team.table, columns.parse_setup(_setup()))
    finish(column_runs.start_run(team.workspace, owner, team.table, column).id)
    login(client, owner)
    resp = client.get(f"/w/{team.workspace.slug}/tables/{team.table.id}")
    assert resp.status_code == 200
    assert "Industry" in resp.get_data(as_text=True)
