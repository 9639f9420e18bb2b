"""Model endpoints: the settings page, the JSON API, resolving the endpoint a call uses, charging.

Endpoints point at the sandbox LLM (the real clients, the real HTTP), the keys go through the real
encryption, every request goes through the real roles and CSRF checks.
"""

from __future__ import annotations

import math
import re

import pytest
from sqlalchemy import func, select

from morket.ai import llm, service
from morket.ai.models import AiEndpoint
from morket.core.errors import NotFound, ValidationFailed
from morket.core.models import AuditEvent
from morket.credits.prices import model_cost
from tests.credentials.conftest import bearer, make_team
from tests.factories import csrf_token, login

KEY = "sandbox-endpoint-key-9b21"


@pytest.fixture
def team(db):
    return make_team("Acme AI")


@pytest.fixture
def stranger(db):
    return make_team("Other AI")


@pytest.fixture
def access_token(client):
    from tests.factories import PASSWORD

    def _token(user, workspace):
        resp = client.post(
            "/api/v1/auth/token",
            json={"email": user.email, "password": PASSWORD, "workspace": workspace.slug},
            environ_base={"REMOTE_ADDR": f"10.8.{user.id % 250}.{workspace.id % 250}"},
        )
        assert resp.status_code == 200, resp.get_json()
        return resp.get_json()["data"]["access_token"]

    return _token


@pytest.fixture
def ai(app, sandbox_server, monkeypatch):
    """The platform default endpoint on the sandbox's OpenAI API, and loopback endpoints allowed."""
    settings = app.config["MORKET"]
    monkeypatch.setitem(settings, "AI_KIND", "openai")
    monkeypatch.setitem(settings, "AI_BASE_URL", sandbox_server.url("openai") + "/v1")
    monkeypatch.setitem(settings, "AI_API_KEY", "sandbox-platform-key")
    monkeypatch.setitem(settings, "AI_MODEL", "sandbox-small")
    monkeypatch.setitem(settings, "AI_MODELS", ["sandbox-large"])
    monkeypatch.setitem(settings, "AI_ALLOW_LOOPBACK", True)
    sandbox_server.reset()
    return sandbox_server


def _body(server, **over):
    return {
        "name": "Local Claude", "kind": "anthropic", "base_url": server.url("anthropic"), "api_key": KEY,
        "model": "sandbox-small", "models": ["sandbox-large"], **over,
    }  # fmt: skip


def test_api_create_list_resolve_test_and_delete(client, db, team, ai, access_token):
    token = access_token(team["admin"], team.workspace)
    resp = client.post("/api/v1/ai/endpoints", json=_body(ai), headers=bearer(token))
    assert resp.status_code == 201, resp.get_json()
    data = resp.get_json()["data"]
    assert (data["name"], data["kind"], data["masked"], data["models"]) == (
        "Local Claude", "anthropic", "••••9b21", ["sandbox-large"],
    )  # fmt: skip
    assert KEY not in resp.get_data(as_text=True)
    stored = db.session.get(AiEndpoint, data["id"])
    assert KEY.encode() not in bytes(stored.ciphertext)
    listed = client.get("/api/v1/ai/endpoints", headers=bearer(token)).get_json()["data"]
    assert [(e["id"], e["masked"]) for e in listed] == [(data["id"], "••••9b21")]
    assert KEY not in client.get("/api/v1/ai/endpoints", headers=bearer(token)).get_data(as_text=True)
    models = client.get("/api/v1/ai/models", headers=bearer(token)).get_json()["data"]
    assert [(m["endpoint_id"], m["model"], m["platform"]) for m in models] == [
        (None, "sandbox-small", True), (None, "sandbox-large", True),
        (data["id"], "sandbox-small", False), (data["id"], "sandbox-large", False),
    ]  # fmt: skip
    # What the AI column gets: the decrypted key, ready for the call path.
    endpoint = service.resolve_endpoint(team.workspace, data["id"], "sandbox-large")
    assert (endpoint.kind, endpoint.api_key, endpoint.model, endpoint.platform) == (
        "anthropic", KEY, "sandbox-large", False,
    )  # fmt: skip
    assert KEY not in repr(endpoint)
    answer = llm.complete(endpoint, system="", prompt="<data>Hello there</data>")
    assert answer.text == 'Sandbox answer about "Hello there".'
    assert service.usage_charge(endpoint, answer) == (0, "own")
    probe = client.post(f"/api/v1/ai/endpoints/{data['id']}/test", headers=bearer(token))
    assert probe.status_code == 200
    assert probe.get_json()["data"] == {
        "ok": True, "message": 'sandbox-small answered: Sandbox answer about "Say hello.".',
        "input_tokens": math.ceil(len(service.TEST_SYSTEM + service.TEST_PROMPT) / 4), "output_tokens": 9,
    }  # fmt: skip
    assert client.delete(f"/api/v1/ai/endpoints/{data['id']}", headers=bearer(token)).status_code == 200
    assert client.get("/api/v1/ai/endpoints", headers=bearer(token)).get_json()["data"] == []
    actions = db.session.scalars(
        select(AuditEvent.action).where(AuditEvent.workspace_id == team.workspace.id).order_by(AuditEvent.id)
    ).all()
    assert [a for a in actions if a.startswith("ai_endpoint")] == [
        "ai_endpoint.created", "ai_endpoint.tested", "ai_endpoint.deleted",
    ]  # fmt: skip


def test_the_test_button_reports_the_providers_error(client, db, team, ai, access_token):
    token = access_token(team["owner"], team.workspace)
    data = client.post("/api/v1/ai/endpoints", json=_body(ai, api_key="not-a-sandbox-key-1234"), headers=bearer(token))
    endpoint_id = data.get_json()["data"]["id"]
    probe = client.post(f"/api/v1/ai/endpoints/{endpoint_id}/test", headers=bearer(token)).get_json()["data"]
    assert probe["ok"] is False and "refused the key (401)" in probe["message"]
    assert "not-a-sandbox" not in probe["message"]


def test_platform_default_is_charged_by_tokens(db, team, ai):
    endpoint = service.resolve_endpoint(team.workspace, None, None)
    assert (endpoint.platform, endpoint.model, endpoint.api_key) == (True, "sandbox-small", "sandbox-platform-key")
    answer = llm.complete(endpoint, system="Be brief.", prompt="<data>Acme</data>", schema={"enum": ["a", "b"]})
    # sandbox-small: 10,000 credits per million input tokens, 40,000 per million output tokens.
    assert (answer.input_tokens, answer.output_tokens) == (7, 4)
    assert service.usage_charge(endpoint, answer) == (1, "platform")
    assert model_cost("sandbox-small", 700, 100) == 7 + 4
    assert model_cost("sandbox-large", 101, 0) == 4  # 3.03 rounds up
    assert model_cost("gpt-4o-mini", 0, 0) == 0
    with pytest.raises(ValidationFailed, match="does not offer the model"):
        service.resolve_endpoint(team.workspace, None, "gpt-5-turbo")


def test_without_a_platform_default_resolving_none_says_so(db, team, ai, monkeypatch, app):
    monkeypatch.setitem(app.config["MORKET"], "AI_BASE_URL", "")
    with pytest.raises(ValidationFailed, match="no default model endpoint"):
        service.resolve_endpoint(team.workspace, None, None)
    assert service.list_models(team.workspace) == []


def test_another_workspace_gets_404_everywhere(client, db, team, stranger, ai, access_token):
    endpoint = service.create_endpoint(team.workspace, team["owner"], **_kw(ai))
    db.session.commit()
    token = access_token(stranger["owner"], stranger.workspace)
    assert client.get("/api/v1/ai/endpoints", headers=bearer(token)).get_json()["data"] == []
    assert client.delete(f"/api/v1/ai/endpoints/{endpoint.id}", headers=bearer(token)).status_code == 404
    assert client.post(f"/api/v1/ai/endpoints/{endpoint.id}/test", headers=bearer(token)).status_code == 404
    with pytest.raises(NotFound):
        service.resolve_endpoint(stranger.workspace, endpoint.id, None)
    login(client, stranger["owner"])
    html_csrf = csrf_token(client, f"/w/{stranger.workspace.slug}/ai-models")
    resp = client.post(f"/w/{stranger.workspace.slug}/ai-models/{endpoint.id}/delete", data={"csrf_token": html_csrf})
    assert resp.status_code == 404
    assert client.get(f"/w/{team.workspace.slug}/ai-models").status_code in (403, 404)
    assert db.session.scalar(select(func.count()).select_from(AiEndpoint)) == 1


def _kw(server, **over):
    body = _body(server, **over)
    return {k: body[k] for k in ("name", "kind", "base_url", "api_key", "model", "models")}


@pytest.mark.parametrize("role", ["member", "viewer"])
def test_members_see_but_cannot_change(client, db, team, ai, access_token, role):
    endpoint = service.create_endpoint(team.workspace, team["owner"], **_kw(ai))
    db.session.commit()
    token = access_token(team[role], team.workspace)
    assert [e["id"] for e in client.get("/api/v1/ai/endpoints", headers=bearer(token)).get_json()["data"]] == [
        endpoint.id
    ]
    assert client.post("/api/v1/ai/endpoints", json=_body(ai, name="Mine"), headers=bearer(token)).status_code == 403
    assert client.delete(f"/api/v1/ai/endpoints/{endpoint.id}", headers=bearer(token)).status_code == 403
    assert client.post(f"/api/v1/ai/endpoints/{endpoint.id}/test", headers=bearer(token)).status_code == 403
    login(client, team[role])
    html = client.get(f"/w/{team.workspace.slug}/ai-models").get_data(as_text=True)
    assert "Local Claude" in html and "••••9b21" in html and KEY not in html
    assert "Add a model endpoint" not in html and f"/ai-models/{endpoint.id}/delete" not in html
    token = csrf_token(client, f"/w/{team.workspace.slug}/ai-models")
    resp = client.post(f"/w/{team.workspace.slug}/ai-models/{endpoint.id}/delete", data={"csrf_token": token})
    assert resp.status_code == 403
    assert db.session.scalar(select(func.count()).select_from(AiEndpoint)) == 1


def test_billing_admin_cannot_see_the_page(client, db, team, ai):
    login(client, team["billing_admin"])
    assert client.get(f"/w/{team.workspace.slug}/ai-models").status_code == 403


@pytest.mark.parametrize(
    ("over", "field"),
    [
        ({"name": ""}, "name"),
        ({"kind": "cohere"}, "kind"),
        ({"api_key": "short"}, "api_key"),
        ({"api_key": "has a space in it"}, "api_key"),
        ({"model": ""}, "model"),
        ({"base_url": "ftp://example.com/v1"}, "base_url"),
        ({"base_url": "http://10.0.0.5:11434/v1"}, "base_url"),
        ({"base_url": "http://169.254.169.254/latest"}, "base_url"),
        ({"base_url": "https://user:pw@api.example.com/v1"}, "base_url"),
        ({"extra": 1}, "extra"),
    ],
)
def test_bad_bodies_are_422_naming_the_field(client, db, team, ai, access_token, over, field):
    token = access_token(team["owner"], team.workspace)
    resp = client.post("/api/v1/ai/endpoints", json=_body(ai, **over), headers=bearer(token))
    payload = resp.get_json()
    assert resp.status_code == 422 and field in payload["error"]["fields"], payload
    assert db.session.scalar(select(func.count()).select_from(AiEndpoint)) == 0


def test_loopback_is_refused_unless_allowed(client, db, team, ai, access_token, monkeypatch, app):
    monkeypatch.setitem(app.config["MORKET"], "AI_ALLOW_LOOPBACK", False)
    token = access_token(team["owner"], team.workspace)
    resp = client.post("/api/v1/ai/endpoints", json=_body(ai), headers=bearer(token))
    assert resp.status_code == 422 and "base_url" in resp.get_json()["error"]["fields"]
    monkeypatch.setitem(app.config["MORKET"], "AI_ENDPOINT_ALLOWLIST", [f"127.0.0.1:{ai.port}"])
    assert client.post("/api/v1/ai/endpoints", json=_body(ai), headers=bearer(token)).status_code == 201


def test_a_second_endpoint_of_the_same_name_is_a_409(client, db, team, ai, access_token):
    token = access_token(team["owner"], team.workspace)
    assert client.post("/api/v1/ai/endpoints", json=_body(ai), headers=bearer(token)).status_code == 201
    resp = client.post("/api/v1/ai/endpoints", json=_body(ai), headers=bearer(token))
    assert resp.status_code == 409


@pytest.mark.parametrize("role", ["owner", "admin"])
def test_page_add_test_and_delete(client, db, team, ai, role):
    login(client, team[role])
    page = f"/w/{team.workspace.slug}/ai-models"
    resp = client.get(page)
    assert resp.status_code == 200 and resp.headers["Cache-Control"] == "no-store"
    assert 'type="password"' in resp.get_data(as_text=True)
    token = csrf_token(client, page)
    form = {"csrf_token": token, **{k: v for k, v in _body(ai).items() if k != "models"}, "models": "sandbox-large"}
    resp = client.post(page, data=form)
    assert resp.status_code == 303, resp.get_data(as_text=True)[:2000]
    html = client.get(page).get_data(as_text=True)
    assert "Saved the model endpoint Local Claude" in html and "<code>••••9b21</code>" in html and KEY not in html
    [endpoint] = service.list_endpoints(team.workspace)
    # The Test button over htmx answers a fragment with the model's answer.
    resp = client.post(f"{page}/{endpoint.id}/test", data={"csrf_token": token}, headers={"HX-Request": "true"})
    fragment = resp.get_data(as_text=True)
    assert resp.status_code == 200 and f'id="probe-{endpoint.id}"' in fragment
    assert "Sandbox answer about &#34;Say hello.&#34;" in fragment or "Sandbox answer about &quot;Say hello" in fragment
    resp = client.post(f"{page}/{endpoint.id}/delete", data={"csrf_token": token})
    assert resp.status_code == 303 and service.list_endpoints(team.workspace) == []


def test_page_form_errors_keep_nothing_and_need_csrf(client, db, team, ai):
    login(client, team["owner"])
    page = f"/w/{team.workspace.slug}/ai-models"
    token = csrf_token(client, page)
    resp = client.post(page, data={"csrf_token": token, "name": "X", "kind": "openai", "base_url": "http://10.1.2.3/v1",
                                   "model": "m", "api_key": KEY})  # fmt: skip
    assert resp.status_code == 422 and "private" in resp.get_data(as_text=True)
    assert KEY not in resp.get_data(as_text=True)
    resp = client.post(page, data={**_body(ai), "models": ""})  # no CSRF token
    assert resp.status_code == 400
    assert db.session.scalar(select(func.count()).select_from(AiEndpoint)) == 0


def test_sidebar_links_ai_models_in_settings(client, db, team, ai):
    login(client, team["member"])
    html = client.get(f"/w/{team.workspace.slug}/").get_data(as_text=True)
    settings = html[html.index('id="sidebar-settings"') :]
    assert re.search(rf'href="/w/{team.workspace.slug}/ai-models"[^>]*>.*?AI models', settings, re.S)


def test_master_key_rotation_reseals_endpoint_keys(app, db, team, ai, monkeypatch):
    new_master = bytes(range(100, 132))
    endpoint = service.create_endpoint(team.workspace, team["owner"], **_kw(ai))
    db.session.flush()
    result = app.test_cli_runner().invoke(
        args=["credentials", "rotate-master-key"], env={"MORKET_NEW_MASTER_KEY": new_master.hex()}
    )
    assert result.exit_code == 0, result.output
    assert KEY not in result.output
    db.session.expire_all()
    # The old master key no longer reads it; the new one does, and the call path works with it.
    with pytest.raises(service.EndpointUnreadable, match="another master key"):
        service.resolve_endpoint(team.workspace, endpoint.id, None)
    monkeypatch.setitem(app.config["MORKET"], "MASTER_KEY", new_master)
    resolved = service.resolve_endpoint(team.workspace, endpoint.id, None)
    assert resolved.api_key == KEY
    assert llm.complete(resolved, system="", prompt="<data>ok</data>").text == 'Sandbox answer about "ok".'


def test_schemathesis_finds_no_server_errors_in_the_ai_api(app, db, team, ai, access_token):
    import schemathesis

    from tests.api.test_openapi import _fuzz

    endpoint = service.create_endpoint(team.workspace, team["owner"], **_kw(ai))
    db.session.commit()
    schema = schemathesis.openapi.from_wsgi("/api/v1/openapi.json", app)
    operations = [result.ok() for result in schema.get_all_operations()]
    operations = [
        op for op in operations if op.path.startswith("/api/v1/ai/endpoints") or op.path == "/api/v1/ai/models"
    ]
    assert {op.path for op in operations} >= {"/api/v1/ai/endpoints", "/api/v1/ai/models"}

    def prepare(case):
        if case.path_parameters and "endpoint_id" in case.path_parameters:
            case.path_parameters["endpoint_id"] = endpoint.id

    _fuzz(app, operations, bearer(access_token(team["owner"], team.workspace)), max_examples=15, prepare=prepare)
