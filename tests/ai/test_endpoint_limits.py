"""An endpoint's limits for AI runs (requests and tokens a minute): set by owners and admins on the AI models
page or the API, shown to everyone else, checked (a clear 422, never half-saved), and used by runs."""

from __future__ import annotations

import pytest

from morket.ai import executor, service
from morket.extensions import db
from tests.ai.test_endpoints import KEY, ai, team  # noqa: F401 - fixtures
from tests.credentials.conftest import access_token, bearer, make_team  # noqa: F401 - access_token is a fixture
from tests.factories import csrf_token, login


@pytest.fixture
def endpoint(team, ai):  # noqa: F811
    made = service.create_endpoint(team.workspace, team.users["owner"], name="Own", kind="openai",
                                   base_url=ai.url("openai") + "/v1", api_key=KEY, model="sandbox-small")  # fmt: skip
    db.session.commit()
    return made


def test_an_admin_sets_limits_on_the_page_and_runs_use_them(client, team, endpoint):  # noqa: F811
    slug = team.workspace.slug
    login(client, team.users["admin"])
    token = csrf_token(client, f"/w/{slug}/ai-models")
    url = f"/w/{slug}/ai-models/{endpoint.id}/limits"
    resp = client.post(url, data={"csrf_token": token, "requests_per_minute": "120", "tokens_per_minute": "50,000"})
    assert resp.status_code == 303
    db.session.refresh(endpoint)
    assert (endpoint.requests_per_minute, endpoint.tokens_per_minute) == (120, 50_000)
    resolved = service.resolve_endpoint(team.workspace, endpoint.id, None)
    assert (resolved.requests_per_minute, resolved.tokens_per_minute) == (120, 50_000)
    page = client.get(f"/w/{slug}/ai-models").get_data(as_text=True)
    assert 'name="requests_per_minute"' in page and 'value="120"' in page

    # Bad input: a clear 422 with the reason, nothing saved.
    bad = client.post(url, data={"csrf_token": token, "requests_per_minute": "-5", "tokens_per_minute": "9"})
    assert bad.status_code == 422 and "Requests a minute must be a whole number" in bad.get_data(as_text=True)
    db.session.refresh(endpoint)
    assert (endpoint.requests_per_minute, endpoint.tokens_per_minute) == (120, 50_000)
    # No CSRF token: refused.
    assert client.post(url, data={"requests_per_minute": "1"}).status_code in (400, 403)
    # Empty puts the defaults back.
    client.post(url, data={"csrf_token": token, "requests_per_minute": "", "tokens_per_minute": ""})
    db.session.refresh(endpoint)
    assert endpoint.requests_per_minute is None and endpoint.tokens_per_minute is None


def test_members_see_limits_but_cannot_change_them(client, team, endpoint):  # noqa: F811
    slug = team.workspace.slug
    service.set_limits(team.workspace, team.users["owner"], endpoint.id, requests_per_minute=90,
                       tokens_per_minute=None)  # fmt: skip
    db.session.commit()
    login(client, team.users["member"])
    page = client.get(f"/w/{slug}/ai-models").get_data(as_text=True)
    assert "90 requests/min" in page and 'name="requests_per_minute"' not in page
    token = csrf_token(client, f"/w/{slug}/tables")
    resp = client.post(f"/w/{slug}/ai-models/{endpoint.id}/limits", data={"csrf_token": token,
                                                                         "requests_per_minute": "1"})  # fmt: skip
    assert resp.status_code == 403
    db.session.refresh(endpoint)
    assert endpoint.requests_per_minute == 90


def test_api_sets_limits_with_roles_and_404_elsewhere(client, team, endpoint, access_token):  # noqa: F811
    url = f"/api/v1/ai/endpoints/{endpoint.id}/limits"
    owner = access_token(team.users["owner"], team.workspace)
    resp = client.put(url, json={"requests_per_minute": 300, "tokens_per_minute": 90_000}, headers=bearer(owner))
    assert resp.status_code == 200, resp.get_json()
    assert resp.get_json()["data"]["requests_per_minute"] == 300
    listed = client.get("/api/v1/ai/endpoints", headers=bearer(owner)).get_json()["data"]
    assert listed[0]["tokens_per_minute"] == 90_000
    assert client.put(url, json={"requests_per_minute": 0}, headers=bearer(owner)).status_code == 422
    assert client.put(url, json={"requests_per_minute": "many"}, headers=bearer(owner)).status_code == 422
    member = access_token(team.users["member"], team.workspace)
    assert client.put(url, json={"requests_per_minute": 5}, headers=bearer(member)).status_code == 403
    stranger = make_team("Elsewhere")
    db.session.commit()
    other = access_token(stranger.users["owner"], stranger.workspace)
    assert client.put(url, json={"requests_per_minute": 5}, headers=bearer(other)).status_code == 404
    assert client.put("/api/v1/ai/endpoints/999999999/limits", json={}, headers=bearer(owner)).status_code == 404


def test_a_runs_plan_takes_the_endpoints_limits(app, team, endpoint):  # noqa: F811
    from morket.ai import column_runs
    from tests.ai.column_support import companies_table, industry_column

    owner = team.users["owner"]
    service.set_limits(team.workspace, owner, endpoint.id, requests_per_minute=30, tokens_per_minute=12_000)
    table = companies_table(team.workspace, owner, 3)
    column = industry_column(team.workspace, owner, table, endpoint_id=endpoint.id)
    run = column_runs.start_run(team.workspace, owner, table, column)
    db.session.commit()
    plan = executor.build_plan(run)
    assert (plan.rpm, plan.tpm) == (30.0, 12_000.0)
    assert plan.limiter_id == f"endpoint-{endpoint.id}"
