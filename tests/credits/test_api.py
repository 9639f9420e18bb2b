"""Credits over the JSON API: balance, the ledger by cursor and kind, roles and tenancy."""

from __future__ import annotations

import pytest

from morket.api.tokens import encode_access_token
from morket.core.roles import BILLING_ADMIN, MEMBER, OWNER, VIEWER
from morket.credits import service
from tests.factories import MembershipFactory


def _bearer(user, workspace, role: str = OWNER) -> dict[str, str]:
    return {"Authorization": f"Bearer {encode_access_token(user.id, workspace.id, role)}"}


def test_balance(client, owner, fund):
    workspace, user = owner
    fund(workspace, 12)
    service.charge(workspace.id, 5, idempotency_key="c")
    resp = client.get("/api/v1/credits", headers=_bearer(user, workspace))
    assert resp.status_code == 200
    assert resp.get_json()["data"] == {"balance": 7}


def test_the_ledger_pages_by_cursor_newest_first(client, owner, fund):
    workspace, user = owner
    made = [fund(workspace, 2).id for _ in range(5)]
    debit = service.charge(workspace.id, 3, idempotency_key="hit", run_id=4, row_id=8, column_id=2, attempt_id=9)
    made.append(debit.id)
    seen: list[int] = []
    cursor = None
    for _ in range(4):
        url = "/api/v1/credits/ledger?limit=4" + (f"&cursor={cursor}" if cursor else "")
        body = client.get(url, headers=_bearer(user, workspace)).get_json()
        seen += [entry["id"] for entry in body["data"]]
        cursor = body["meta"]["pagination"]["next_cursor"]
        if cursor is None:
            break
    assert seen == made[::-1]
    first = client.get("/api/v1/credits/ledger?limit=1", headers=_bearer(user, workspace)).get_json()["data"][0]
    assert first["kind"] == "debit" and first["amount"] == -3 and first["balance_after"] == 7
    assert (first["run_id"], first["row_id"], first["column_id"], first["attempt_id"]) == (4, 8, 2, 9)


def test_the_ledger_filters_by_kind(client, owner, fund):
    workspace, user = owner
    fund(workspace, 2)
    charged = service.charge(workspace.id, 1, idempotency_key="c")
    body = client.get("/api/v1/credits/ledger?kind=debit", headers=_bearer(user, workspace)).get_json()
    assert [entry["id"] for entry in body["data"]] == [charged.id]


@pytest.mark.parametrize("query", ["limit=0", "limit=201", "cursor=0", "cursor=x", "kind=gift", "page=2"])
def test_bad_queries_get_422_with_the_field(client, owner, query):
    workspace, user = owner
    resp = client.get(f"/api/v1/credits/ledger?{query}", headers=_bearer(user, workspace))
    assert resp.status_code == 422
    assert resp.get_json()["error"]["fields"]


@pytest.mark.parametrize(("role", "status"), [(BILLING_ADMIN, 200), (MEMBER, 403), (VIEWER, 403)])
def test_roles(client, owner, role, status):
    workspace, _ = owner
    user = MembershipFactory(workspace=workspace, role=role).user
    for path in ("/api/v1/credits", "/api/v1/credits/ledger"):
        assert client.get(path, headers=_bearer(user, workspace, role)).status_code == status


def test_a_token_reads_only_its_own_workspace(client, owner, stranger, fund):
    (a, _), (b, b_owner) = owner, stranger
    fund(a, 50)
    theirs = fund(b, 3)
    assert client.get("/api/v1/credits", headers=_bearer(b_owner, b)).get_json()["data"] == {"balance": 3}
    body = client.get("/api/v1/credits/ledger", headers=_bearer(b_owner, b)).get_json()
    assert [entry["id"] for entry in body["data"]] == [theirs.id]
    # A token for workspace B naming workspace A is refused: the membership is checked, not the claim.
    assert client.get("/api/v1/credits", headers=_bearer(b_owner, a)).status_code == 401


def test_the_openapi_document_lists_both_operations(client):
    paths = client.get("/api/v1/openapi.json").get_json()["paths"]
    assert "get" in paths["/api/v1/credits"] and "get" in paths["/api/v1/credits/ledger"]
