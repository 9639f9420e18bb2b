"""The search service's result-set expectations, held alike by both engines.

Each test runs once per engine: PostgreSQL always, OpenSearch when ``MORKET_OPENSEARCH_URL`` names
a cluster (CI's ``search-engines`` job starts one; see docs/ARCHITECTURE.md, Search, to run it
locally). Rows are written through the tables service and indexed by the real sync, which mirrors
them into OpenSearch when it is the engine.
"""

from __future__ import annotations

import os

import pytest

from morket.search import service as search
from morket.search import tasks
from morket.search.engine import Filters
from morket.tables import service as tables
from tests.api.conftest import make_team

COLUMNS = (
    {"name": "Company", "type": "text"},
    {"name": "Domain", "type": "domain"},
    {"name": "Email", "type": "email"},
)
OPENSEARCH_URL = os.environ.get("MORKET_OPENSEARCH_URL", "").strip()


@pytest.fixture(scope="module")
def _fresh_index(app):
    """A clean index for this environment on the cluster (documents of earlier runs would only be
    confirmed away, but they would take places in each answer)."""
    from morket.search import opensearch as osx

    client = osx.client(OPENSEARCH_URL)
    client.indices.delete(index=osx.index_name("test"), ignore=[404])
    yield
    client.close()


@pytest.fixture(params=["postgres", "opensearch"])
def engine(request, app, db):
    settings = app.config["MORKET"]
    held = settings.get("OPENSEARCH_URL", "")
    if request.param == "opensearch":
        if not OPENSEARCH_URL:
            pytest.skip("OpenSearch engine: set MORKET_OPENSEARCH_URL to a cluster to run it (CI does)")
        request.getfixturevalue("_fresh_index")
        settings["OPENSEARCH_URL"] = OPENSEARCH_URL
    else:
        settings["OPENSEARCH_URL"] = ""
    assert search.engine().name == request.param
    yield request.param
    settings["OPENSEARCH_URL"] = held


def _world(db, team):
    """Acme under different spellings in three tables, plus other companies."""
    ws, owner = team.workspace, team.owner
    accounts = tables.create_table(ws, owner, "Accounts", columns=COLUMNS)
    tables.insert_rows(
        ws,
        owner,
        accounts,
        [
            {"Company": "Acme Corp", "Domain": "https://www.acme.com/", "Email": "Jane@ACME.com"},
            {"Company": "Acme Corp Europe", "Domain": "acme.eu"},
            {"Company": "Globex", "Domain": "globex.com"},
            {"Company": "Initech", "Domain": "initech.io"},
        ],
    )
    leads = tables.create_table(ws, owner, "Leads", columns=COLUMNS)
    tables.insert_rows(ws, owner, leads, [{"Company": "ACME Corporation"}, {"Company": "Hooli"}])
    events = tables.create_table(ws, owner, "Events", columns=COLUMNS)
    tables.insert_rows(ws, owner, events, [{"Company": "Umbrella", "Domain": "acme.com"}])
    db.session.flush()
    tasks.sync_search()
    return accounts, leads, events


def _find(team, q: str, filters: Filters = Filters()):
    return search.search(team.workspace, "viewer", q, filters, per_page=100)


def _values(results) -> list[str]:
    return [r.value for r in results.rows]


@pytest.mark.parametrize("q", ["acme corp", "ACME Corporation", "acmee corp"])
def test_acme_is_found_however_it_is_typed_and_exact_spellings_rank_first(db, engine, q):
    team = make_team()
    accounts, leads, _ = _world(db, team)
    results = _find(team, q)
    found = {(r.table_id, r.value) for r in results.rows}
    assert {(accounts.id, "Acme Corp"), (leads.id, "ACME Corporation")} <= found, results.rows
    assert not {"Globex", "Hooli", "Initech"} & set(_values(results))
    if q != "acmee corp":
        # "Acme Corp" and "ACME Corporation" are the query once normalised: they lead, before "Acme Corp Europe".
        assert set(_values(results)[:2]) == {"Acme Corp", "ACME Corporation"}
        assert _values(results).index("Acme Corp Europe") > 1


def test_domains_and_emails_meet_whatever_their_form(db, engine):
    team = make_team()
    accounts, _, events = _world(db, team)
    by_domain = _find(team, "https://www.ACME.com/about")
    # The two rows whose domain is acme.com (one stored as "https://www.acme.com/") lead, exact matches.
    assert {(r.table_id, r.value) for r in by_domain.rows[:2]} == {(accounts.id, "acme.com"), (events.id, "acme.com")}
    assert "Globex" not in _values(by_domain)
    by_email = _find(team, "jane@acme.com")
    assert _values(by_email)[0].lower() == "jane@acme.com"


def test_prefixes_and_typos(db, engine):
    team = make_team()
    _world(db, team)
    assert _values(_find(team, "glob")) == ["Globex"]
    assert "Initech" in _values(_find(team, "initec"))
    assert _find(team, "zzyzx").rows == []


def test_facets_count_every_match_and_a_table_filter_keeps_its_rows(db, engine):
    team = make_team()
    accounts, leads, events = _world(db, team)
    everything = _find(team, "acme")
    counts = {f.key: f.count for f in everything.facets["table"]}
    assert counts[str(accounts.id)] == 2  # Acme Corp, Acme Corp Europe (one hit per row)
    assert counts[str(leads.id)] == 1
    assert counts[str(events.id)] == 1  # acme.com
    filtered = _find(team, "acme", Filters(table_ids=(leads.id,)))
    assert _values(filtered) == ["ACME Corporation"]
    assert {f.key: f.count for f in filtered.facets["table"]} == counts  # chips still tell the whole


def test_another_workspace_with_the_same_rows_is_never_found(db, engine):
    team, other = make_team(), make_team()
    _world(db, team)
    theirs = _world(db, other)
    their_ids = {t.id for t in theirs}
    for q in ("acme", "globex", "acme.com", "jane@acme.com"):
        assert not {r.table_id for r in _find(team, q).rows} & their_ids, q
    # Naming their table in a filter finds nothing either.
    assert _find(team, "acme", Filters(table_ids=tuple(their_ids))).rows == []


def test_a_deleted_column_or_table_is_not_found_even_before_its_documents_go(db, engine):
    team = make_team()
    accounts, leads, _ = _world(db, team)
    domain = next(c for c in accounts.live_columns if c.name == "Domain")
    tables.delete_column(team.workspace, team.owner, accounts, domain.id)
    tables.delete_table(team.workspace, team.owner, leads)
    db.session.flush()
    values = _values(_find(team, "acme"))
    assert "https://www.acme.com/" not in values
    assert "ACME Corporation" not in values
    assert "Acme Corp" in values
