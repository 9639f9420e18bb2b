"""Errors render the HTML error page for pages and the envelope under /api/v1, and never leak internals."""

import json
import logging

import pytest

from morket.core.errors import Forbidden

LEAKY_MESSAGE = "connection to db.internal failed for password=hunter2 in /srv/morket/app/secret_module.py"


def _add_failing_routes(app):
    def boom():
        raise RuntimeError(LEAKY_MESSAGE)

    def refuse():
        raise Forbidden("Your role in this workspace does not allow this.")

    app.add_url_rule("/_test/boom", "test_boom", boom)
    app.add_url_rule("/_test/refuse", "test_refuse", refuse)
    app.add_url_rule("/api/v1/_test/boom", "test_api_boom", boom)
    app.add_url_rule("/api/v1/_test/refuse", "test_api_refuse", refuse)
    return app


@pytest.fixture
def failing_client(make_app):
    return _add_failing_routes(make_app()).test_client()


def _assert_page(resp, status: int, title: str):
    assert resp.status_code == status
    assert resp.mimetype == "text/html"
    body = resp.get_data(as_text=True)
    assert f"Error {status}" in body
    assert title in body
    assert "<html" in body


def _assert_envelope(resp, status: int, code: str):
    assert resp.status_code == status
    assert resp.mimetype == "application/json"
    body = resp.get_json()
    assert body["success"] is False and body["data"] is None
    assert body["error"]["code"] == code
    assert body["error"]["message"]


def test_403_is_a_page_for_pages_and_an_envelope_for_the_api(failing_client):
    _assert_page(failing_client.get("/_test/refuse"), 403, "Not allowed")
    _assert_envelope(failing_client.get("/api/v1/_test/refuse"), 403, "forbidden")


def test_404_is_a_page_for_pages_and_an_envelope_for_the_api(client):
    _assert_page(client.get("/no/such/page"), 404, "Not found")
    _assert_envelope(client.get("/api/v1/no/such/thing"), 404, "not_found")


def test_405_is_a_page_for_pages_and_an_envelope_for_the_api(client):
    resp = client.post("/healthz")
    _assert_page(resp, 405, "Method not allowed")
    assert "GET" in resp.headers["Allow"]
    resp = client.delete("/api/v1/me")
    _assert_envelope(resp, 405, "method_not_allowed")
    assert "GET" in resp.headers["Allow"]


def test_500_is_a_page_for_pages_and_an_envelope_for_the_api(failing_client):
    resp = failing_client.get("/_test/boom")
    _assert_page(resp, 500, "Something went wrong")
    assert "hunter2" not in resp.get_data(as_text=True)
    resp = failing_client.get("/api/v1/_test/boom")
    _assert_envelope(resp, 500, "internal_error")
    assert "hunter2" not in resp.get_data(as_text=True)


@pytest.fixture
def start_production_app(make_app, monkeypatch, database_url, services):
    """Start the app the way production does (MORKET_ENV=production, TESTING off, JSON logs to stderr).

    A factory, so that the log handler binds to the stderr that the test itself captures.
    """
    monkeypatch.setenv("MORKET_ENV", "production")
    monkeypatch.setenv("MORKET_SECRET_KEY", "p" * 48)
    monkeypatch.setenv("MORKET_MASTER_KEY", "5a" * 32)
    monkeypatch.setenv("MORKET_DATABASE_URL", database_url)
    monkeypatch.setenv("MORKET_REDIS_URL", services["redis"])
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level

    def _start():
        app = make_app(morket={"ENV": "production"}, TESTING=False)
        assert app.config["ENV_NAME"] == "production" and not app.testing
        return _add_failing_routes(app)

    yield _start
    root.handlers[:] = handlers
    root.setLevel(level)


def test_in_production_a_500_shows_no_trace_path_or_message_but_the_log_has_it(start_production_app, capsys):
    production_app = start_production_app()
    resp = production_app.test_client().get("/_test/boom", base_url="https://localhost")
    body = resp.get_data(as_text=True)
    _assert_page(resp, 500, "Something went wrong")
    for leak in ("Traceback", "RuntimeError", "secret_module", ".py", "/srv/", "hunter2", 'File "'):
        assert leak not in body
    api = production_app.test_client().get("/api/v1/_test/boom", base_url="https://localhost")
    _assert_envelope(api, 500, "internal_error")
    for leak in ("Traceback", "RuntimeError", ".py", "hunter2"):
        assert leak not in api.get_data(as_text=True)

    lines = [json.loads(line) for line in capsys.readouterr().err.splitlines() if line.startswith("{")]
    errors = [entry for entry in lines if entry["level"] == "ERROR" and entry.get("path") == "/_test/boom"]
    assert errors, "the 500 should be logged as a JSON line"
    assert errors[0]["request_id"] == resp.headers["X-Request-Id"]
    assert "RuntimeError" in errors[0]["exc"]
    assert "hunter2" not in json.dumps(errors[0])


def test_in_production_http_errors_use_the_calm_wording(start_production_app):
    production_app = start_production_app()
    resp = production_app.test_client().post("/healthz", base_url="https://localhost")
    _assert_page(resp, 405, "Method not allowed")
    assert "This page does not accept that kind of request." in resp.get_data(as_text=True)


def test_a_bare_403_shows_morkets_words_and_next_steps_not_the_frameworks(make_app):
    from flask import abort

    app = make_app()
    app.add_url_rule("/_test/abort403", "test_abort403", lambda: abort(403))
    app.add_url_rule("/_test/gone", "test_gone", lambda: abort(410))
    client = app.test_client()
    body = client.get("/_test/abort403").get_data(as_text=True)
    assert "permission to access the requested resource" not in body
    assert "Your role in this workspace does not allow this." in body and "What to do next" in body
    gone = client.get("/_test/gone")
    assert gone.status_code == 410 and "No longer available" in gone.get_data(as_text=True)


def test_an_htmx_request_gets_the_error_as_a_fragment(failing_client):
    resp = failing_client.get("/_test/refuse", headers={"HX-Request": "true"})
    body = resp.get_data(as_text=True)
    assert resp.status_code == 403 and "<html" not in body
    assert 'role="alert"' in body and "data-error-message" in body and "Error 403" in body
