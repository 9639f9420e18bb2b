"""Research results over the JSON API and in the row panel: answers with their sources and pages, 404 for
ids that name nothing or belong to another workspace, and page text shown escaped."""

from __future__ import annotations

import pytest

from morket.ai import column_runs
from morket.extensions import db
from morket.tables import service as tables
from tests.ai.column_support import ai, finish  # noqa: F401 - fixture
from tests.ai.research_support import (
    research,  # noqa: F401 - fixture
    research_column,
    research_sites,  # noqa: F401 - fixture
    research_table,
)
from tests.credentials.conftest import access_token, bearer, make_team  # noqa: F401 - access_token is a fixture
from tests.enrichment.test_engine_support import grant
from tests.factories import login

HOSTILE = """<!doctype html><html><head><title>Hostile &lt;b&gt;Co</title></head><body>
<p>Hostile Co was founded by <script>alert(1)</script>people who write <img src=x onerror=alert(2)> tags.</p>
</body></html>"""


@pytest.fixture
def team(db, research):  # noqa: F811
    research.serve("hostile.test", "/", HOSTILE)
    team = make_team("Research")
    grant(team.workspace, 50_000)
    owner = team.users["owner"]
    team.table = research_table(
        team.workspace,
        owner,
        research,
        [("Acme", "acme.test"), ("Hostile Co", "hostile.test"), ("Nobody", None), ("", None)],
    )
    team.column = research_column(team.workspace, owner, team.table)
    run = column_runs.start_run(team.workspace, owner, team.table, team.column)
    db.session.commit()
    finish(run.id)
    team.rows = [r.id for r in tables.read_window(team.workspace, owner, team.table, None, 0, 10)]
    return team


def test_api_lists_and_gets_research_results_with_sources(client, team, access_token, research):  # noqa: F811
    token = access_token(team.users["viewer"], team.workspace)
    base = f"/api/v1/tables/{team.table.id}/ai-columns/{team.column.id}"
    column = client.get(base, headers=bearer(token)).get_json()["data"]
    assert column["output_type"] == "research" and column["research_steps"] == 6 and column["research_pages"] == 3
    listed = client.get(f"{base}/research", headers=bearer(token))
    assert listed.status_code == 200
    data = listed.get_json()["data"]
    assert [r["row_id"] for r in data] == sorted(r["row_id"] for r in data) and len(data) == 3
    acme = client.get(f"{base}/rows/{team.rows[0]}/research", headers=bearer(token)).get_json()["data"]
    assert acme["status"] == "answered" and acme["answer"]
    assert acme["sources"][0]["url"] == research.url("acme.test", "/") and acme["sources"][0]["quote"]
    assert acme["pages"][0] == {"url": research.url("acme.test", "/"), "final_url": research.url("acme.test", "/"),
                                "status": 200, "outcome": "read", "reason": None}  # fmt: skip
    assert acme["steps"] >= 3 and acme["input_tokens"] > 0
    page = client.get(f"{base}/research?after_row_id={team.rows[0]}&limit=1", headers=bearer(token)).get_json()
    assert [r["row_id"] for r in page["data"]] == [team.rows[1]]
    nobody = client.get(f"{base}/rows/{team.rows[2]}/research", headers=bearer(token)).get_json()["data"]
    assert nobody["status"] == "unsourced" and nobody["sources"] == [] and "No sourced answer" in nobody["message"]
    # A row with nothing to ask was never researched; ids that name nothing are 404s.
    assert client.get(f"{base}/rows/{team.rows[3]}/research", headers=bearer(token)).status_code == 404
    assert client.get(f"{base}/rows/999999999/research", headers=bearer(token)).status_code == 404
    other_column = f"/api/v1/tables/{team.table.id}/ai-columns/999999999"
    assert client.get(f"{other_column}/research", headers=bearer(token)).status_code == 404
    assert client.get(f"{base}/research?limit=0", headers=bearer(token)).status_code == 422


def test_another_workspace_gets_404(client, team, access_token):  # noqa: F811
    stranger = make_team("Not theirs")
    db.session.commit()
    token = access_token(stranger.users["owner"], stranger.workspace)
    base = f"/api/v1/tables/{team.table.id}/ai-columns/{team.column.id}"
    assert client.get(f"{base}/research", headers=bearer(token)).status_code == 404
    assert client.get(f"{base}/rows/{team.rows[0]}/research", headers=bearer(token)).status_code == 404
    login(client, stranger.users["owner"])
    page = f"/w/{stranger.workspace.slug}/tables/{team.table.id}/ai/{team.column.id}/rows/{team.rows[0]}/research"
    assert client.get(page).status_code == 404


def test_row_panel_shows_citations_escaped(client, team, research):  # noqa: F811
    login(client, team.users["viewer"])
    slug = team.workspace.slug
    detail = client.get(f"/w/{slug}/tables/{team.table.id}/rows/{team.rows[0]}")
    assert detail.status_code == 200
    assert f"/ai/{team.column.id}/rows/{team.rows[0]}/research" in detail.get_data(as_text=True)
    acme = client.get(f"/w/{slug}/tables/{team.table.id}/ai/{team.column.id}/rows/{team.rows[0]}/research")
    html = acme.get_data(as_text=True)
    assert acme.status_code == 200 and 'class="ai-citation"' in html
    assert f'href="{research.url("acme.test", "/")}"' in html and 'rel="noopener noreferrer nofollow"' in html
    hostile = client.get(f"/w/{slug}/tables/{team.table.id}/ai/{team.column.id}/rows/{team.rows[1]}/research")
    text = hostile.get_data(as_text=True)
    assert "<script>" not in text and "<img" not in text and "<b>" not in text
    assert "Hostile Co was founded by" in text
    flagged = client.get(f"/w/{slug}/tables/{team.table.id}/ai/{team.column.id}/rows/{team.rows[2]}/research")
    assert "ai-research-flag" in flagged.get_data(as_text=True) and 'class="ai-citation"' not in flagged.get_data(
        as_text=True
    )
    nothing = client.get(f"/w/{slug}/tables/{team.table.id}/ai/{team.column.id}/rows/{team.rows[3]}/research")
    assert nothing.status_code == 200 and "Not researched yet" in nothing.get_data(as_text=True)


def test_try_researches_and_a_run_after_it_pays_nothing_twice(client, db, research, access_token):  # noqa: F811
    import sqlalchemy as sa

    from morket.credits.models import LedgerEntry

    team = make_team("Research try")
    grant(team.workspace, 50_000)
    owner = team.users["owner"]
    table = research_table(team.workspace, owner, research, [("Acme", "acme.test"), ("Globex", "globex.test")])
    column = research_column(team.workspace, owner, table)
    db.session.commit()
    token = access_token(team.users["member"], team.workspace)
    base = f"/api/v1/tables/{table.id}/ai-columns/{column.id}"
    tried = client.post(f"{base}/dry-runs", headers=bearer(token))
    assert tried.status_code == 201, tried.get_json()
    samples = tried.get_json()["data"]["samples"]
    assert len(samples) == 2 and all(s["sources"] and s["cost"] > 0 and s["value"] for s in samples)
    assert samples[0]["sources"][0]["url"] == research.url("acme.test", "/")
    estimate = client.get(f"{base}/estimate", headers=bearer(token)).get_json()["data"]
    assert estimate["max_credits"] >= estimate["estimate_credits"] > 0
    run = client.post(f"{base}/runs", json={}, headers=bearer(token)).get_json()["data"]
    finished = finish(run["id"])
    # The try's answers were cached: the run delivers them (sources included) and pays nothing more.
    assert finished.succeeded == 2 and finished.credits_used == 0
    charged = db.session.scalar(sa.select(sa.func.sum(-LedgerEntry.amount)).where(
        LedgerEntry.workspace_id == team.workspace.id, LedgerEntry.provider == "ai"))  # fmt: skip
    assert charged == sum(s["cost"] for s in samples)
    listed = client.get(f"{base}/research", headers=bearer(token)).get_json()["data"]
    assert [r["sources"][0]["quote"] for r in listed] == [s["sources"][0]["quote"] for s in samples]


def test_the_setup_page_saves_a_research_columns_bounds(client, db, research):  # noqa: F811
    from morket.ai import columns
    from morket.tables.models import Column
    from tests.factories import csrf_token

    team = make_team("Research page")
    owner = team.users["owner"]
    table = research_table(team.workspace, owner, research, [("Acme", "acme.test")])
    db.session.commit()
    login(client, owner)
    new = f"/w/{team.workspace.slug}/tables/{table.id}/ai/new"
    token = csrf_token(client, new)
    form = {"name": "Founded", "prompt": "When was {{Company}} founded? {{Website}}", "output_type": "research",
            "model_choice": "|", "temperature": "0", "max_tokens": "256", "research_steps": "4",
            "research_pages": "2", "csrf_token": token}  # fmt: skip
    bad = client.post(new, data={**form, "research_pages": "40"})
    assert bad.status_code == 422 and "research_pages" in bad.get_data(as_text=True)
    saved = client.post(new, data=form)
    assert saved.status_code == 303, saved.get_data(as_text=True)[:500]
    column = db.session.scalars(sa_select_ai(table.id)).one()
    config = columns.read_config(column.config)
    assert (config.output_type, config.research_steps, config.research_pages) == ("research", 4, 2)
    page = client.get(saved.headers["Location"]).get_data(as_text=True)
    assert 'name="research_steps" min="2" max="12" value="4"' in page
    # Saving the page again keeps the bounds it shows.
    again = client.post(
        saved.headers["Location"], data={**form, "csrf_token": csrf_token(client, saved.headers["Location"])}
    )
    assert again.status_code == 303
    db.session.expire_all()
    assert columns.read_config(db.session.get(Column, column.id).config).research_pages == 2


def sa_select_ai(table_id: int):
    import sqlalchemy as sa

    from morket.tables.models import Column

    return sa.select(Column).where(Column.table_id == table_id, Column.type == "ai")
