"""Search pages: the header box and its typeahead fragment, the results page with facet chips,
escaped highlights, the empty state, tenancy (404) and a row opened in the grid by ?row=."""

from __future__ import annotations

import re

import pytest
import sqlalchemy as sa

from morket.search import tasks
from morket.tables import service
from tests.factories import MembershipFactory, login, workspace_with_owner

pytestmark = pytest.mark.usefixtures("db")

COLUMNS = ({"name": "Company", "type": "text"}, {"name": "Domain", "type": "domain"})


@pytest.fixture
def setup(db, client):
    workspace, owner = workspace_with_owner()
    accounts = service.create_table(workspace, owner, "Accounts", columns=COLUMNS)
    service.insert_rows(
        workspace,
        owner,
        accounts,
        [{"Company": f"Filler {i}"} for i in range(30)]
        + [{"Company": "Acme Corp", "Domain": "acme.com"}, {"Company": "<b>Acme</b> & Sons"}],
    )
    leads = service.create_table(workspace, owner, "Leads", columns=COLUMNS)
    service.insert_rows(workspace, owner, leads, [{"Company": "ACME Corporation"}])
    db.session.flush()
    tasks.sync_search()
    login(client, owner)
    return workspace, owner, accounts, leads


def test_header_box_on_workspace_pages(setup, client):
    workspace, _, accounts, _ = setup
    html = client.get(f"/w/{workspace.slug}/search").get_data(as_text=True)
    assert "data-search-box" in html and f"/w/{workspace.slug}/search/typeahead" in html


def test_empty_state_says_what_search_covers(setup, client):
    workspace = setup[0]
    resp = client.get(f"/w/{workspace.slug}/search")
    html = resp.get_data(as_text=True)
    assert resp.status_code == 200 and "data-empty-state" in html
    assert "every text cell" in html and "enrichment cell" in html


def test_typeahead_groups_by_table_and_escapes(setup, client):
    workspace, _, accounts, leads = setup
    resp = client.get(f"/w/{workspace.slug}/search/typeahead", query_string={"q": "acmee corp"})
    html = resp.get_data(as_text=True)
    assert resp.status_code == 200
    assert "Accounts" in html and "Leads" in html
    assert f"/w/{workspace.slug}/tables/{leads.id}?row=" in html
    assert "<mark>Acme</mark>" in html or "<mark>ACME</mark>" in html
    escaped = client.get(f"/w/{workspace.slug}/search/typeahead", query_string={"q": "sons"}).get_data(as_text=True)
    assert "<b>" not in escaped and "&lt;b&gt;" in escaped
    bad = client.get(f"/w/{workspace.slug}/search/typeahead", query_string={"q": "x" * 300})
    assert bad.status_code == 200 and "at most 200" in bad.get_data(as_text=True)


def test_results_page_with_facet_chips(setup, client):
    workspace, _, accounts, leads = setup
    resp = client.get(f"/w/{workspace.slug}/search", query_string={"q": "acme"})
    html = resp.get_data(as_text=True)
    assert resp.status_code == 200
    assert html.count('class="search-result"') == 3
    chip = re.search(rf'href="([^"]+)" data-facet-key="{leads.id}"', html)
    assert chip, "no chip for the Leads table"
    filtered = client.get(chip.group(1).replace("&amp;", "&")).get_data(as_text=True)
    assert filtered.count('class="search-result"') == 1 and 'aria-current="true"' in filtered
    assert "<mark>ACME</mark> Corporation" in filtered
    bad = client.get(f"/w/{workspace.slug}/search", query_string={"q": "a\x00"})
    assert bad.status_code == 422 and "NUL" in bad.get_data(as_text=True)


def test_other_workspace_members_get_404(setup, client, new_client):
    workspace = setup[0]
    _, stranger = workspace_with_owner()
    other = new_client()
    login(other, stranger)
    assert other.get(f"/w/{workspace.slug}/search", query_string={"q": "acme"}).status_code == 404
    assert other.get(f"/w/{workspace.slug}/search/typeahead", query_string={"q": "acme"}).status_code == 404
    viewer = MembershipFactory(workspace=workspace, role="viewer").user
    as_viewer = new_client()
    login(as_viewer, viewer)
    seen = as_viewer.get(f"/w/{workspace.slug}/search", query_string={"q": "acme"}).get_data(as_text=True)
    assert "<mark>Acme</mark> Corp" in seen


def test_a_result_opens_its_row_in_the_grid(db, setup, client):
    workspace, _, accounts, _ = setup
    row_id = db.session.execute(
        sa.text(f"SELECT id FROM ut.t_{accounts.id} ORDER BY pos OFFSET 30 LIMIT 1")  # noqa: S608
    ).scalar()
    html = client.get(f"/w/{workspace.slug}/tables/{accounts.id}", query_string={"row": row_id}).get_data(as_text=True)
    assert f'data-open-row="{row_id}" data-open-pos="30"' in html
    assert client.get(f"/w/{workspace.slug}/tables/{accounts.id}", query_string={"row": "x"}).status_code == 422


def test_admin_console_shows_the_index_lag(db, setup, new_client):
    from datetime import UTC, datetime

    from morket.accounts.models import User
    from morket.search import indexing

    workspace, owner, accounts, _ = setup
    admin = User(
        email="root@search.test",
        name="Root",
        password_hash="!",
        is_platform_admin=True,
        email_verified_at=datetime.now(UTC),
    )
    db.session.add(admin)
    db.session.flush()
    as_admin = new_client()
    login(as_admin, admin)
    service.insert_rows(workspace, owner, accounts, [{"Company": "Waiting Row"}])
    db.session.flush()
    before = indexing.lag_report()
    assert before.pending_rows >= 1 and before.oldest_pending_s is not None
    html = as_admin.get("/admin/search").get_data(as_text=True)
    assert "Rows waiting to be indexed" in html and 'data-figure="pending">' in html
    assert 'data-figure="oldest">none' not in html
    tasks.sync_search()
    after = as_admin.get("/admin/search").get_data(as_text=True)
    assert 'data-figure="pending">0<' in after and 'data-figure="oldest">none' in after
    assert "no syncs yet" not in after
    # Not a platform admin: the console does not exist.
    plain = new_client()
    login(plain, owner)
    assert plain.get("/admin/search").status_code == 404


def _slowed(monkeypatch, marker: str) -> None:
    """Make the search statements that contain ``marker`` outlast their time limit (a fault injected
    into the statement's text: it sleeps 0.3 s, past limits lowered to 50 ms)."""
    from morket.search import postgres

    monkeypatch.setattr(postgres, "STATEMENT_TIMEOUT_MS", 50)
    monkeypatch.setattr(postgres, "TYPOS_TIMEOUT_MS", 50)
    real = postgres._scored

    def scored(ways, more=None):
        sql = real(ways, more)
        return sql + " HAVING pg_sleep(0.3) IS NOT NULL" if marker in sql else sql

    monkeypatch.setattr(postgres, "_scored", scored)


def test_a_search_past_its_time_limit_is_a_503_page_that_says_what_to_do(setup, client, monkeypatch):
    workspace, *_ = setup
    _slowed(monkeypatch, "cand AS")
    resp = client.get(f"/w/{workspace.slug}/search", query_string={"q": "acme"})
    assert resp.status_code == 503
    page = resp.get_data(as_text=True)
    assert "took too long" in page and "pick a table" in page
    assert 'class="sidebar' in page  # the error page is the product's, shell and all (read after the rollback)
    api = client.get("/api/v1/search", query_string={"q": "acme"})  # the session cookie is not an API token
    assert api.status_code in (401, 503)


def test_a_typo_search_past_its_limit_finds_nothing_and_the_page_still_answers(setup, client, monkeypatch):
    workspace, *_ = setup
    _slowed(monkeypatch, "tsq_typos")
    resp = client.get(f"/w/{workspace.slug}/search", query_string={"q": "acmme corpp"})
    assert resp.status_code == 200
    assert "Nothing matches" in resp.get_data(as_text=True)
    found = client.get(f"/w/{workspace.slug}/search", query_string={"q": "acme"})  # the next search is whole
    assert found.status_code == 200 and found.get_data(as_text=True).count('class="search-result"') >= 2
