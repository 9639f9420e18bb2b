"""The OpenSearch engine held to its contract without a cluster.

Every request body it builds validates against the OpenSearch API specification (read at test
time, see ``opensearch_support``); every query carries the workspace filter and routing; recorded
OpenSearch answers are replayed through opensearch-py's real transport by a local HTTP server, so
the client's serialisation, retries and error mapping run against the adapter. The same engine
runs against a real OpenSearch in CI (``test_engines.py`` with ``MORKET_OPENSEARCH_URL``).
"""

from __future__ import annotations

import copy
import json

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from morket.api.tokens import encode_access_token
from morket.search import opensearch as osx
from morket.search import tasks
from morket.search.engine import Filters, parse_query
from morket.tables import service as tables
from tests.api.conftest import bearer, make_team
from tests.search.opensearch_support import (
    ReplayServer,
    errors,
    load_spec,
    need_spec,
    search_answer,
    search_hit,
    spec_root,
)

INDEX = osx.index_name("test")
SEARCH_PATH = f"/{INDEX}/_search"
COLUMNS = (
    {"name": "Company", "type": "text"},
    {"name": "Domain", "type": "domain"},
    {"name": "Email", "type": "email"},
)
QUERIES = (
    "acme",
    "ACME Corporation",
    "acmee corp",
    "https://www.Acme.com/pricing",
    "Jane@ACME.com",
    'o\'reilly "quoted" AND (x OR y) name:*',
    "Zürich 東京 😀",
    "x" * 200,
)
FILTERS = (Filters(), Filters(table_ids=(11, 12), column_ids=(31,), states=("done",), providers=("hunter", "apollo")))


@pytest.fixture(scope="module")
def spec():
    return load_spec(str(need_spec()))


@pytest.fixture
def replay():
    server = ReplayServer().start()
    yield server
    server.stop()


# --- request bodies against the specification ---------------------------------------------------


@pytest.mark.parametrize("raw", QUERIES)
@pytest.mark.parametrize("filters", FILTERS, ids=("unfiltered", "filtered"))
def test_search_bodies_validate_against_the_spec(spec, raw, filters):
    body = osx.search_body(7, parse_query(raw), filters, 200)
    assert errors(spec.request("_core", "search"), body) == []


def test_the_spec_check_refuses_a_body_opensearch_would_refuse(spec):
    """The validation can fail: a wrong multi_match type, a size as text, a bool clause as a string."""
    body = osx.search_body(7, parse_query("acme"), Filters(), 200)
    validator = spec.request("_core", "search")
    for path, bad in ((("query", "bool", "should", 3, "multi_match", "type"), "fuzzy_fields"), (("size",), "many")):
        broken = copy.deepcopy(body)
        node = broken
        for key in path[:-1]:
            node = node[key]
        node[path[-1]] = bad
        assert errors(validator, broken), path


def test_index_settings_and_mappings_validate_against_the_spec(spec):
    body = osx.index_body()
    assert errors(spec.request("indices", "indices.create"), body) == []
    props = body["mappings"]["properties"]
    assert props["value"]["fields"]["sayt"]["type"] == "search_as_you_type"
    assert body["mappings"]["_routing"] == {"required": True}
    assert {"morket_name", "morket_email", "morket_domain"} <= set(body["settings"]["analysis"]["analyzer"])
    broken = copy.deepcopy(body)
    broken["mappings"]["properties"]["workspace_id"] = {"type": "long", "index": "sometimes"}
    assert errors(spec.request("indices", "indices.create"), broken)


def test_delete_by_query_and_bulk_bodies_validate_against_the_spec(spec):
    for rows in (None, [1, 2, 3]):
        assert errors(spec.request("_core", "delete_by_query"), osx.rows_query(7, 11, rows)) == []
    doc = {"workspace_id": 7, "table_id": 11, "row_id": 2, "column_id": 31, "value": "Acme", "norm": "acme"}
    lines = osx.bulk_lines(INDEX, [{**doc, "states": ["done"], "providers": []}])
    operation = spec.validator("schemas/_core.bulk.yaml", "components", "schemas", "OperationContainer")
    assert errors(operation, lines[0]) == []
    assert errors(spec.request("_core", "bulk", "application/x-ndjson"), lines) == []


def test_routing_is_a_parameter_of_every_operation_the_engine_sends(spec):
    for operation in ("search", "delete_by_query", "bulk"):
        assert "routing" in spec.query_parameters("_core", operation), operation


def test_recorded_answers_replayed_here_follow_the_spec(spec):
    source = {"workspace_id": 7, "table_id": 1, "row_id": 2, "column_id": 3, "value": "Acme", "norm": "acme"}
    assert errors(spec.response("_core", "search@200"), search_answer([search_hit(INDEX, source, 2.5)])) == []
    assert errors(spec.response("_core", "bulk@200"), BULK_OK) == []
    # delete_by_query@200 is a oneOf whose second branch (a task) takes any object: check the first.
    by_scroll = spec.validator("schemas/_common.yaml", "components", "schemas", "BulkByScrollResponseBase")
    assert errors(by_scroll, DELETED) == []


# --- tenancy: the workspace filter and routing cannot be left out ------------------------------


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    raw=st.text(min_size=1, max_size=200),
    workspace_id=st.integers(min_value=1, max_value=2**62),
    tables=st.lists(st.integers(min_value=1, max_value=2**62), max_size=4),
    states=st.lists(st.text(max_size=12), max_size=3),
)
def test_every_built_body_is_scoped_to_its_workspace(raw, workspace_id, tables, states):
    query = parse_query(raw)
    filters = Filters(table_ids=tuple(tables), states=tuple(states))
    bodies = [osx.search_body(workspace_id, query, filters, 200)]
    bodies += [osx.rows_query(workspace_id, t, rows) for t in tables or [1] for rows in (None, [1])]
    for body in bodies:
        clauses = body["query"]["bool"]["filter"]
        assert clauses[0] == {"term": {"workspace_id": workspace_id}}
        # No other clause may name a workspace (a filter cannot widen or replace the scope).
        assert sum("workspace_id" in json.dumps(c) for c in clauses) == 1
        assert "workspace_id" not in json.dumps(body["query"]["bool"].get("should", []))
    doc = {"workspace_id": workspace_id, "table_id": 1, "row_id": 1, "column_id": 1, "value": raw, "norm": query.norm}
    action = osx.bulk_lines(INDEX, [{**doc, "states": [], "providers": []}])[0]["index"]
    assert action["routing"] == str(workspace_id)


# --- replayed through opensearch-py's transport -------------------------------------------------

BULK_OK = {"took": 4, "errors": False, "items": []}
DELETED = {
    "took": 2,
    "timed_out": False,
    "total": 0,
    "deleted": 0,
    "batches": 0,
    "version_conflicts": 0,
    "noops": 0,
    "retries": {"bulk": 0, "search": 0},
    "throttled_millis": 0,
    "requests_per_second": -1.0,
    "throttled_until_millis": 0,
    "failures": [],
}


def _accounts(team):
    table = tables.create_table(team.workspace, team.owner, "Accounts", columns=COLUMNS)
    tables.insert_rows(
        team.workspace,
        team.owner,
        table,
        [{"Company": "Acme Corp", "Domain": "acme.com"}, {"Company": "Acme Europe"}, {"Company": "Globex"}],
    )
    return table


def _documents(workspace_id: int, db) -> list[dict]:
    rows = db.session.execute(
        sa.text(
            "SELECT workspace_id, table_id, row_id, column_id, value, norm FROM search_documents "
            "WHERE workspace_id = :w ORDER BY table_id, row_id, column_id"
        ),
        {"w": workspace_id},
    ).mappings()
    return [dict(r) for r in rows]


def test_find_asks_with_routing_and_shows_only_live_cells_of_the_workspace(db, replay):
    team, other = make_team(), make_team()
    table = _accounts(team)
    _accounts(other)
    db.session.flush()
    tasks.sync_search()
    mine = [d for d in _documents(team.workspace.id, db) if d["value"].startswith("Acme")]
    theirs = [d for d in _documents(other.workspace.id, db) if d["value"].startswith("Acme")]
    stale = {**mine[0], "row_id": 999_999}  # a row deleted since it was mirrored
    # The index answers with the workspace's cells, another workspace's and a stale one: only the first are shown.
    replay.answer("POST", SEARCH_PATH, 200, search_answer([search_hit(INDEX, d) for d in (*theirs, stale, *mine)]))
    engine = osx.OpenSearchEngine(replay.url, "test")
    query = parse_query("acme")
    hits = engine.find(team.workspace.id, query, Filters(), 200)

    assert {(h.table_id, h.row_id, h.value) for h in hits} == {(table.id, d["row_id"], d["value"]) for d in mine}
    assert {(h.table_name, h.column_name) for h in hits} == {("Accounts", "Company")}  # read with the hits
    (sent,) = replay.requests("POST", SEARCH_PATH)
    assert sent.query["routing"] == [str(team.workspace.id)]
    assert sent.json() == osx.search_body(team.workspace.id, query, Filters(), 200)
    # Ranked by the shared rule: "Acme Corp" (a word and the cell's start) before nothing else odd.
    assert all(h.score > 0.5 for h in hits)


def test_the_client_retries_a_busy_cluster_then_answers(db, replay):
    team = make_team()
    _accounts(team)
    db.session.flush()
    tasks.sync_search()
    (doc,) = [d for d in _documents(team.workspace.id, db) if d["value"] == "Globex"]
    replay.answer("POST", SEARCH_PATH, 503, {"error": "busy", "status": 503}, times=2)
    replay.answer("POST", SEARCH_PATH, 200, search_answer([search_hit(INDEX, doc)]))
    hits = osx.OpenSearchEngine(replay.url, "test").find(team.workspace.id, parse_query("globex"), Filters(), 200)
    assert [h.value for h in hits] == ["Globex"]
    assert len(replay.requests("POST", SEARCH_PATH)) == 3


@pytest.fixture
def opensearch_settings(app, replay):
    settings = app.config["MORKET"]
    held = settings.get("OPENSEARCH_URL", "")
    settings["OPENSEARCH_URL"] = replay.url
    yield replay
    settings["OPENSEARCH_URL"] = held


def test_an_unreachable_cluster_is_a_503_with_a_message_not_a_500(db, client, opensearch_settings):
    team = make_team()
    opensearch_settings.answer("POST", SEARCH_PATH, 500, {"error": {"type": "exception", "reason": "boom"}})
    headers = bearer(encode_access_token(team.owner.id, team.workspace.id, "owner"))
    resp = client.get("/api/v1/search", query_string={"q": "acme"}, headers=headers)
    assert resp.status_code == 503
    assert "Search is unavailable" in resp.get_data(as_text=True)
    # A missing index (nothing mirrored yet in this environment) is an empty answer.
    opensearch_settings.answers.clear()
    resp = client.get("/api/v1/search", query_string={"q": "acme"}, headers=headers)
    assert resp.status_code == 200 and resp.get_json()["data"] == []


def test_a_sync_mirrors_the_documents_routed_by_workspace(db, opensearch_settings):
    replay = opensearch_settings
    replay.answer("PUT", f"/{INDEX}", 200, {"acknowledged": True, "shards_acknowledged": True, "index": INDEX})
    replay.answer("POST", f"/{INDEX}/_delete_by_query", 200, DELETED)
    replay.answer("POST", "/_bulk", 200, BULK_OK)
    team = make_team()
    table = _accounts(team)
    db.session.flush()
    tasks.sync_search()

    (created,) = replay.requests("PUT", f"/{INDEX}")
    assert created.json() == osx.index_body()
    deletes = replay.requests("POST", f"/{INDEX}/_delete_by_query")
    assert deletes and all(d.query["routing"] == [str(team.workspace.id)] for d in deletes)
    lines = [line for b in replay.requests("POST", "/_bulk") for line in b.ndjson()]
    root = spec_root()  # what the client sent, as sent, against the specification when it is here
    if root is not None:
        spec = load_spec(str(root))
        assert all(errors(spec.request("_core", "delete_by_query"), d.json()) == [] for d in deletes)
        assert errors(spec.request("_core", "bulk", "application/x-ndjson"), lines) == []
    actions, docs = lines[0::2], lines[1::2]
    assert all(a["index"]["routing"] == str(team.workspace.id) for a in actions)
    assert {(d["table_id"], d["value"]) for d in docs} >= {(table.id, "Acme Corp"), (table.id, "acme.com")}


def test_a_refused_bulk_keeps_the_rows_marked_for_the_next_sync(db, opensearch_settings):
    replay = opensearch_settings
    replay.answer("HEAD", f"/{INDEX}", 200, {})
    replay.answer("POST", f"/{INDEX}/_delete_by_query", 200, DELETED)
    refused = {"index": {"_index": INDEX, "_id": "1:1:1", "status": 400, "error": {"type": "mapper_parsing_exception"}}}
    replay.answer("POST", "/_bulk", 200, {"took": 1, "errors": True, "items": [refused]})
    team = make_team()
    table = _accounts(team)
    db.session.commit()
    with pytest.raises(osx.SearchUnavailable, match="refused 1 of"):
        tasks.sync_search()  # the new table is indexed whole first: its mirror fails, its transaction too
    db.session.rollback()
    recorded = sa.text("SELECT count(*) FROM search_tables WHERE table_id = :t")
    assert db.session.execute(recorded, {"t": table.id}).scalar() == 0  # the next sweep tries again

    replay.answers[-1].payload = BULK_OK
    tasks.sync_search()
    assert db.session.execute(recorded, {"t": table.id}).scalar() == 1
    last = replay.requests("POST", "/_bulk")[-1].ndjson()
    assert {d["value"] for d in last[1::2]} >= {"Acme Corp", "Acme Europe", "Globex"}


# --- the same ranking rule as PostgreSQL ----------------------------------------------------------


@pytest.mark.parametrize(
    "raw", ["acme corp", "ACME Corporation", "acmee corp", "acme", "glob", "acme.com", "jane@acme.com"]
)
def test_given_every_cell_the_engine_keeps_and_scores_what_postgres_finds(db, replay, raw):
    """Handed every document of the workspace as candidates, the OpenSearch engine keeps exactly the
    cells the PostgreSQL engine finds, with the same scores (typos only when nothing matches directly)."""
    from morket.search.postgres import PostgresEngine

    team = make_team()
    table = _accounts(team)
    tables.insert_rows(team.workspace, team.owner, table, [{"Company": "ACME Corporation", "Email": "Jane@ACME.com"}])
    db.session.flush()
    tasks.sync_search()
    replay.answer(
        "POST", SEARCH_PATH, 200, search_answer([search_hit(INDEX, d) for d in _documents(team.workspace.id, db)])
    )
    query = parse_query(raw)
    theirs = {
        (h.table_id, h.row_id, h.column_id): h.score
        for h in PostgresEngine().find(team.workspace.id, query, Filters(), 200)
    }
    mine = {
        (h.table_id, h.row_id, h.column_id): h.score
        for h in osx.OpenSearchEngine(replay.url, "test").find(team.workspace.id, query, Filters(), 200)
    }
    assert theirs and mine.keys() == theirs.keys()
    assert all(mine[k] == pytest.approx(theirs[k]) for k in theirs)


def test_an_index_created_meanwhile_by_another_worker_is_used(db, opensearch_settings):
    replay = opensearch_settings
    cause = {
        "type": "resource_already_exists_exception",
        "reason": f"index [{INDEX}/Zx3] already exists",
        "index_uuid": "Zx3",
        "index": INDEX,
    }
    replay.answer("PUT", f"/{INDEX}", 400, {"error": {"root_cause": [cause], **cause}, "status": 400})
    replay.answer("POST", f"/{INDEX}/_delete_by_query", 200, DELETED)
    replay.answer("POST", "/_bulk", 200, BULK_OK)
    team = make_team()
    _accounts(team)
    db.session.flush()
    tasks.sync_search()
    assert replay.requests("PUT", f"/{INDEX}") and replay.requests("POST", "/_bulk")
    # Any other refusal of the index is not swallowed.
    replay.answers[0].payload = {"error": {"type": "illegal_argument_exception", "reason": "bad"}, "status": 400}
    with pytest.raises(Exception, match="illegal_argument_exception"):
        osx.OpenSearchEngine(replay.url, "test").ensure_index()


def test_a_whole_table_is_mirrored_in_bounded_bulks(db, opensearch_settings, monkeypatch):
    monkeypatch.setattr(osx, "BULK_DOCS", 2)
    replay = opensearch_settings
    replay.answer("HEAD", f"/{INDEX}", 200, {})
    replay.answer("POST", f"/{INDEX}/_delete_by_query", 200, DELETED)
    replay.answer("POST", "/_bulk", 200, BULK_OK)
    team = make_team()
    table = _accounts(team)
    db.session.flush()
    tasks.sync_search()
    bulks = [b.ndjson() for b in replay.requests("POST", "/_bulk")]
    assert all(len(lines) <= 4 for lines in bulks) and len(bulks) >= 2
    sent = sorted((d["row_id"], d["column_id"]) for lines in bulks for d in lines[1::2])
    indexed = db.session.execute(
        sa.text("SELECT row_id, column_id FROM search_documents WHERE table_id = :t ORDER BY 1, 2"), {"t": table.id}
    ).all()
    assert sent == [tuple(r) for r in indexed]
