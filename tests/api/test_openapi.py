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

from morket.core.ratelimit import clear_rate_limits
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


TABLES_PATH = "/api/v1/tables"


def _fuzz(app, operations, headers, *, max_examples: int, prepare=None) -> None:
    """Fuzz each operation; ``prepare(case)`` may point the case at real objects before it is sent."""
    checks = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]

    def clear_limits() -> None:
        with app.app_context():
            clear_rate_limits()

    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(
            max_examples=max_examples,
            deadline=None,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        def run(case):
            clear_limits()
            if prepare is not None:
                prepare(case)
            response = case.call(headers=headers)
            case.validate_response(response, checks=checks)

        run()


def test_schemathesis_finds_no_server_errors_or_schema_drift(app, db, team, login_api, fuzz_schema):
    headers = bearer(login_api(team.owner, team.workspace)["access_token"])
    operations = [result.ok() for result in fuzz_schema.get_all_operations()]
    operations = [op for op in operations if not op.path.startswith(TABLES_PATH)]
    assert len(operations) >= 12
    _fuzz(app, operations, headers, max_examples=12)


def test_schemathesis_fuzzes_the_tables_api_on_a_seeded_table(app, db, team, fuzz_schema):
    from morket.api.tokens import encode_access_token
    from morket.tables import service
    from morket.tables.models import Table
    from tests.support.seeding import seed_rows

    workspace, owner = team.workspace, team.owner
    headers = bearer(encode_access_token(owner.id, workspace.id, "owner"))
    columns = [
        {"name": "Company", "type": "text"},
        {"name": "Employees", "type": "number"},
        {"name": "Founded", "type": "date"},
        {"name": "Tags", "type": "multi_select", "config": {"options": ["Lead", "Customer"]}},
        {"name": "Payload", "type": "json"},
    ]
    seeded: dict[str, int] = {}

    def targets() -> dict[str, int]:
        """Ids of a seeded table, a column, a row and a view, recreated when a fuzzed DELETE removed them."""
        table = db.session.get(Table, seeded["table_id"]) if seeded else None
        if table is None:
            table = service.create_table(workspace, owner, "Fuzzed", columns=columns)
            seed_rows(workspace, owner, table, 20, seed=1)
            seeded["table_id"] = table.id
        db.session.refresh(table)
        if not table.live_columns:
            service.add_column(workspace, owner, table, "Company", "text")
        if not service.read_window(workspace, owner, table, None, 0, 1):
            service.insert_rows(workspace, owner, table, [{}])
        views = service.list_views(workspace, table)
        view = views[0] if views else service.create_view(workspace, owner, table, "Grid view")
        db.session.flush()
        row = service.read_window(workspace, owner, table, None, 0, 1)[0]
        return {"table_id": table.id, "column_id": table.live_columns[0].id, "row_id": row.id, "view_id": view.id,
                "provider": "hubspot"}  # fmt: skip

    def prepare(case) -> None:
        ids = targets()
        for name in case.path_parameters or {}:
            # an id the seed does not make (an AI column's, a run's) names nothing: that route answers 404
            case.path_parameters[name] = ids.get(name, 999_999_999)

    operations = [result.ok() for result in fuzz_schema.get_all_operations()]
    operations = [op for op in operations if op.path.startswith(TABLES_PATH)]
    assert len(operations) >= 19
    _fuzz(app, operations, headers, max_examples=25, prepare=prepare)
