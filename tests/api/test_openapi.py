"""The OpenAPI document, the docs page, and schemathesis fuzzing the API against its own document."""

from __future__ import annotations

import json
import re

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)

from tests.api.conftest import bearer


def _refs(node):
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref":
                yield value
            else:
                yield from _refs(value)
    elif isinstance(node, list):
        for value in node:
            yield from _refs(value)


def test_document_covers_every_api_route(app, client):
    resp = client.get("/api/v1/openapi.json")
    assert resp.status_code == 200
    doc = resp.get_json()
    assert doc["openapi"] == "3.1.0"
    documented = {(path, method.upper()) for path, methods in doc["paths"].items() for method in methods}
    for rule in app.url_map.iter_rules():
        if not rule.rule.startswith("/api/v1/") or rule.endpoint == "api.openapi_document":
            continue
        path = re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", rule.rule)
        for method in rule.methods - {"HEAD", "OPTIONS"}:
            assert (path, method) in documented, f"{method} {path} is not in the OpenAPI document"
    assert set(doc["components"]["securitySchemes"]) == {"bearerAuth", "apiKey"}
    schemas = doc["components"]["schemas"]
    assert "$defs" not in json.dumps(doc)
    for ref in _refs(doc):
        assert ref.startswith("#/components/schemas/") and ref.rsplit("/", 1)[-1] in schemas, ref


def test_operations_declare_bodies_errors_and_security(client):
    doc = client.get("/api/v1/openapi.json").get_json()
    patch = doc["paths"]["/api/v1/workspace"]["patch"]
    assert patch["requestBody"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/WorkspaceUpdate"
    }
    assert {"401", "403", "422", "429"} <= set(patch["responses"])
    assert patch["responses"]["422"]["content"]["application/json"]["schema"]["$ref"].endswith("/ErrorEnvelope")
    assert patch["security"] == [{"bearerAuth": []}, {"apiKey": []}]
    token = doc["paths"]["/api/v1/auth/token"]["post"]
    assert token["security"] == []
    data = token["responses"]["200"]["content"]["application/json"]["schema"]["properties"]["data"]
    assert data == {"$ref": "#/components/schemas/TokenPairOut"}
    members = doc["paths"]["/api/v1/members"]["get"]["responses"]["200"]["content"]["application/json"]["schema"]
    assert members["properties"]["data"] == {"type": "array", "items": {"$ref": "#/components/schemas/MemberOut"}}
    invite_role = doc["components"]["schemas"]["InvitationCreate"]["properties"]["role"]
    assert "owner" not in invite_role["enum"]


def test_docs_page_renders_every_endpoint_without_inline_code(client, db):
    resp = client.get("/api/docs")
    assert resp.status_code == 200
    html = resp.get_data(as_text=True)
    doc = client.get("/api/v1/openapi.json").get_json()
    for path, methods in doc["paths"].items():
        assert path in html
        for op in methods.values():
            assert op["summary"].replace("'", "&#39;") in html
    assert "curl -X POST http://" in html and "/api/v1/auth/token" in html
    assert "Authorization: Bearer $MORKET_TOKEN" in html
    assert 'id="schema-TokenPairOut"' in html
    assert not re.search(r"<script(?![^>]*\bsrc=)", html), "inline script on the docs page"
    assert " style=" not in html
    for asset in re.findall(r'<(?:script|link)[^>]*(?:src|href)="([^"]+)"', html):
        assert asset.startswith("/"), f"asset from elsewhere: {asset}"


@pytest.fixture
def fuzz_schema(app):
    return schemathesis.openapi.from_wsgi("/api/v1/openapi.json", app)


def test_schemathesis_finds_no_server_errors_or_schema_drift(app, db, team, login_api, fuzz_schema):
    from morket.core.jobs import redis_connection

    headers = bearer(login_api(team.owner, team.workspace)["access_token"])
    checks = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]
    operations = [result.ok() for result in fuzz_schema.get_all_operations()]
    assert len(operations) >= 12

    def clear_limits() -> None:
        with app.app_context():
            conn = redis_connection()
            keys = list(conn.scan_iter("morket-rl*"))
            if keys:
                conn.delete(*keys)

    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(
            max_examples=12,
            deadline=None,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        def run(case):
            clear_limits()
            response = case.call(headers=headers)
            case.validate_response(response, checks=checks)

        run()
