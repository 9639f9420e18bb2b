"""The API keeps its document's word: configs checked per column type, required bodies required,
NUL refused wherever a string is read, and only documented statuses (issue #12, "API under fire")."""

from __future__ import annotations

import pytest

from morket.api.tokens import encode_access_token
from morket.core.errors import ValidationFailed
from morket.tables import column_service, service
from morket.workspaces import service as workspaces
from tests.api.conftest import bearer

pytestmark = pytest.mark.usefixtures("db")


@pytest.fixture
def owner_headers(team):
    return bearer(encode_access_token(team.owner.id, team.workspace.id, "owner"))


@pytest.fixture
def table(team):
    table = service.create_table(team.workspace, team.owner, "Accounts", columns=[{"name": "Company", "type": "text"}])
    service.insert_rows(team.workspace, team.owner, table, [{"Company": "Acme"}, {"Company": "Globex"}])
    return table


def _columns_url(table) -> str:
    return f"/api/v1/tables/{table.id}/columns"


@pytest.mark.parametrize("config", [None, {}, {"formula": ""}, {"expression": ""}, {"expression": "   "}])
def test_a_formula_column_without_a_formula_is_refused_and_rows_still_insert(client, owner_headers, table, config):
    resp = client.post(
        _columns_url(table), json={"name": "F", "type": "formula", "config": config}, headers=owner_headers
    )
    assert resp.status_code == 422, resp.get_json()
    assert "config" in resp.get_json()["error"]["fields"]
    assert [c["name"] for c in client.get(_columns_url(table), headers=owner_headers).get_json()["data"]] == ["Company"]
    resp = client.post(f"/api/v1/tables/{table.id}/rows", json={"Company": "Initech"}, headers=owner_headers)
    assert resp.status_code == 201


def test_a_formula_that_does_not_compile_is_refused(client, owner_headers, table):
    resp = client.post(
        _columns_url(table),
        json={"name": "F", "type": "formula", "config": {"expression": "{Nope} + 1"}},
        headers=owner_headers,
    )
    assert resp.status_code == 422


def test_a_formula_column_from_the_api_is_computed_for_existing_rows(client, owner_headers, table, run_jobs):
    resp = client.post(
        _columns_url(table),
        json={"name": "Shout", "type": "formula", "config": {"expression": "UPPER({Company})"}},
        headers=owner_headers,
    )
    assert resp.status_code == 201, resp.get_json()
    column_id = resp.get_json()["data"]["id"]
    assert resp.get_json()["data"]["config"]["result_type"] == "text"
    run_jobs()
    rows = client.get(f"/api/v1/tables/{table.id}/rows", headers=owner_headers).get_json()["data"]
    assert sorted(r["values"][str(column_id)] for r in rows) == ["ACME", "GLOBEX"]
    resp = client.post(f"/api/v1/tables/{table.id}/rows", json={"Company": "initech"}, headers=owner_headers)
    assert resp.get_json()["data"]["values"][str(column_id)] == "INITECH"


def test_every_entry_point_checks_a_formula_config(team, table):
    """Pages, table creation and CSV import reach the same validator through the service."""
    with pytest.raises(ValidationFailed):
        service.add_column(team.workspace, team.owner, table, "F", "formula", config={"formula": ""})
    with pytest.raises(ValidationFailed):
        column_service.add_table_column(team.workspace, team.owner, table, "F", "formula", config={})
    with pytest.raises(ValidationFailed):
        service.create_table(team.workspace, team.owner, "T", columns=[{"name": "F", "type": "formula"}])


def test_restoring_a_formula_column_rechecks_its_formula(team, table):
    workspace, owner = team.workspace, team.owner
    extra = service.add_column(workspace, owner, table, "Extra", "text")
    formula, _ = column_service.add_table_column(
        workspace, owner, table, "F", "formula", config={"expression": "{Extra}"}
    )
    service.delete_column(workspace, owner, table, formula.id)
    service.delete_column(workspace, owner, table, extra.id)
    with pytest.raises(ValidationFailed):
        service.restore_column(workspace, owner, table, formula.id)


def test_the_generic_columns_endpoint_refuses_enrichment_and_ai_settings(client, owner_headers, table):
    bogus = {"steps": "anything", "whatever": 1}
    resp = client.post(
        _columns_url(table), json={"name": "E", "type": "enrichment", "config": bogus}, headers=owner_headers
    )
    assert resp.status_code == 422
    assert "type" in resp.get_json()["error"]["fields"]
    resp = client.post(_columns_url(table), json={"name": "A", "type": "ai", "config": bogus}, headers=owner_headers)
    assert resp.status_code == 422
    assert resp.get_json()["error"]["fields"] == {"config": ["must be empty"]}
    enrichment = client.get(f"/api/v1/tables/{table.id}/enrichment-columns", headers=owner_headers).get_json()
    assert enrichment["data"] == []
    resp = client.post(_columns_url(table), json={"name": "A", "type": "ai"}, headers=owner_headers)
    assert resp.status_code == 201


def test_bodies_the_document_requires_are_required(client, owner_headers, table):
    view_id = client.get(f"/api/v1/tables/{table.id}/views", headers=owner_headers).get_json()["data"][0]["id"]
    before = table.row_count
    for method, url in [
        ("post", f"/api/v1/tables/{table.id}/rows"),
        ("post", f"/api/v1/tables/{table.id}/exports"),
        ("patch", f"/api/v1/tables/{table.id}/views/{view_id}"),
    ]:
        resp = getattr(client, method)(url, headers=owner_headers)
        assert resp.status_code == 422, (url, resp.status_code)
        assert resp.get_json()["error"]["fields"] == {"body": ["A JSON body is required."]}
    resp = client.get(f"/api/v1/tables/{table.id}", headers=owner_headers)
    assert resp.get_json()["data"]["row_count"] == before
    doc = client.get("/api/v1/openapi.json").get_json()
    assert doc["paths"]["/api/v1/tables/{table_id}/rows"]["post"]["requestBody"]["required"] is True


def test_nul_is_refused_anywhere_in_a_body_and_the_document_says_so(client, owner_headers, table):
    resp = client.post(
        f"/api/v1/tables/{table.id}/views",
        json={"name": "V", "filters": {"op": "and", "conditions": [{"operator": "search", "value": "a\x00b"}]}},
        headers=owner_headers,
    )
    assert resp.status_code == 422
    assert resp.get_json()["error"]["fields"] == {"filters.conditions.0.value": ["must not contain NUL characters"]}
    resp = client.post(f"/api/v1/tables/{table.id}/rows", json={"Com\x00pany": "x"}, headers=owner_headers)
    assert resp.status_code == 422
    doc = client.get("/api/v1/openapi.json").get_json()
    name = doc["components"]["schemas"]["ColumnCreate"]["properties"]["name"]
    assert name["pattern"] == "^[^\\u0000]*$"
    assert doc["components"]["schemas"]["RowCreate"]["propertyNames"] == {"pattern": "^[^\\u0000]*$"}


def test_logging_out_with_an_api_key_is_forbidden_as_documented(client, team):
    _, plaintext = workspaces.create_api_key(team.workspace, team.owner, name="k", role="member")
    resp = client.post("/api/v1/auth/logout", json={"refresh_token": "x"}, headers=bearer(plaintext))
    assert resp.status_code == 403
    doc = client.get("/api/v1/openapi.json").get_json()
    assert "403" in doc["paths"]["/api/v1/auth/logout"]["post"]["responses"]


def test_a_long_row_ids_query_gets_a_json_422_and_every_allowed_one_fits_gunicorns_line(client, owner_headers):
    from morket import gunicorn_config

    url = "/api/v1/tables/1/enrichment-columns/1/cells"
    resp = client.get(url, query_string={"row_ids": ",".join(["1234567"] * 600)}, headers=owner_headers)
    assert resp.status_code == 422
    assert resp.is_json and "row_ids" in resp.get_json()["error"]["fields"]
    doc = client.get("/api/v1/openapi.json").get_json()
    cells = doc["paths"]["/api/v1/tables/{table_id}/enrichment-columns/{column_id}/cells"]["get"]
    longest = next(p for p in cells["parameters"] if p["name"] == "row_ids")["schema"]["maxLength"]
    biggest_ids = "/api/v1/tables/9223372036854775807/enrichment-columns/9223372036854775807/cells"
    # Commas may arrive percent-encoded (%2C): three bytes each.
    line = f"GET {biggest_ids}?row_ids={'9' * longest} HTTP/1.1"
    assert len(line) + 2 * (longest // 2) <= gunicorn_config.limit_request_line
