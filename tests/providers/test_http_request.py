"""The generic HTTP API provider against a local JSON server that the test allowlists."""

from __future__ import annotations

import json
import threading
import time

import httpx
import pytest
from werkzeug.serving import make_server
from werkzeug.wrappers import Request, Response

from morket.providers import registry
from morket.providers.base import CallContext
from morket.providers.http_request import OptionsError, check_options, template_inputs
from morket.providers.sandboxes.server import QuietHandler

provider = registry.get_provider("http")
REQUEST = registry.get_operation("http.request")


class JsonApi:
    """A tiny JSON API that records what it received."""

    def __init__(self) -> None:
        self.received: list[dict] = []
        self.server = make_server("127.0.0.1", 0, self.app, threaded=True, request_handler=QuietHandler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def port(self) -> int:
        return self.server.server_port

    def app(self, environ, start_response):  # WSGI
        request = Request(environ)
        self.received.append(
            {"method": request.method, "path": request.path, "args": dict(request.args),
             "headers": dict(request.headers), "body": request.get_data(as_text=True)}
        )  # fmt: skip
        path = request.path
        if path == "/companies":
            domain = request.args.get("domain", "")
            if domain == "missing.com":
                body, status = {"error": "no such company"}, 404
            else:
                body = {"company": {"name": domain.split(".")[0].title(), "tags": ["b2b", "saas"],
                                    "metrics": {"employees": 42}}}  # fmt: skip
                status = 200
            return Response(json.dumps(body), status, mimetype="application/json")(environ, start_response)
        if path == "/echo":
            return Response(
                json.dumps({"got": json.loads(request.get_data() or b"null")}), mimetype="application/json"
            )(environ, start_response)
        if path == "/redirect":
            return Response("", 302, headers={"Location": "http://169.254.169.254/latest"})(environ, start_response)
        if path == "/big":
            return Response(b"[" + b"1," * 1_200_000 + b"1]", mimetype="application/json")(environ, start_response)
        if path == "/html":
            return Response("<html></html>", mimetype="text/html")(environ, start_response)
        if path == "/slow":
            time.sleep(1)
            return Response("{}", mimetype="application/json")(environ, start_response)
        if path.startswith("/status/"):
            status = int(path.rsplit("/", 1)[1])
            headers = {"Retry-After": "7"} if status == 429 else {}
            return Response("{}", status, headers=headers, mimetype="application/json")(environ, start_response)
        return Response("{}", 404)(environ, start_response)


@pytest.fixture(scope="module")
def api():
    server = JsonApi()
    yield server
    server.server.shutdown()


@pytest.fixture
def allowed(app, api):
    """The app context with the test server's host:port allowlisted (and restored after)."""
    settings = app.config["MORKET"]
    before = settings.get("SCRAPE_ALLOWLIST")
    settings["SCRAPE_ALLOWLIST"] = [f"127.0.0.1:{api.port}", f"localhost:{api.port}"]
    api.received.clear()
    with app.app_context():
        yield api
    settings["SCRAPE_ALLOWLIST"] = before


@pytest.fixture
def ctx():
    with httpx.Client() as client:
        yield CallContext(client=client, api_key=None, base_url="", timeout=3)


def test_get_with_url_template_and_jsonpath_outputs(allowed, ctx):
    options = {
        "url": f"http://127.0.0.1:{allowed.port}/companies?domain={{{{domain}}}}&x=1",
        "headers": {"Authorization": "Bearer secret-token-123"},
        "outputs": {"name": "$.company.name", "size": "$.company.metrics.employees", "tags": "$.company.tags[*]"},
    }
    result = provider.call(REQUEST, {"domain": "acme.com&evil=1"}, ctx, options)
    assert result.outcome == "hit"
    assert result.values == {"name": "Acme", "size": 42, "tags": ["b2b", "saas"]}
    (seen,) = allowed.received
    assert seen["args"] == {"domain": "acme.com&evil=1", "x": "1"}  # the value was URL-encoded
    assert seen["headers"]["Authorization"] == "Bearer secret-token-123"


def test_post_json_body_escapes_values(allowed, ctx):
    options = {
        "method": "POST",
        "url": f"http://127.0.0.1:{allowed.port}/echo",
        "body": '{"name": "{{name}}", "note": "fixed"}',
        "outputs": {"name": "$.got.name"},
    }
    tricky = 'Ada "the first" \\ Lovelace'
    result = provider.call(REQUEST, {"name": tricky}, ctx, options)
    assert result.outcome == "hit" and result.values == {"name": tricky}
    assert allowed.received[0]["headers"]["Content-Type"] == "application/json"


def test_whole_response_without_outputs_and_not_found(allowed, ctx):
    url = f"http://127.0.0.1:{allowed.port}/companies?domain={{{{domain}}}}"
    whole = provider.call(REQUEST, {"domain": "globex.io"}, ctx, {"url": url})
    assert whole.outcome == "hit" and whole.values["response"]["company"]["name"] == "Globex"
    missing = provider.call(REQUEST, {"domain": "missing.com"}, ctx, {"url": url})
    assert (missing.outcome, missing.http_status) == ("not_found", 404)
    no_match = provider.call(REQUEST, {"domain": "globex.io"}, ctx, {"url": url, "outputs": {"x": "$.nothing"}})
    assert no_match.outcome == "not_found"


@pytest.mark.parametrize(
    ("status", "outcome"), [(500, "retryable"), (503, "retryable"), (401, "auth_error"), (422, "invalid_input")]
)
def test_status_classification(allowed, ctx, status, outcome):
    result = provider.call(REQUEST, {}, ctx, {"url": f"http://127.0.0.1:{allowed.port}/status/{status}"})
    assert (result.outcome, result.http_status) == (outcome, status)


def test_rate_limited_and_timeout(allowed, ctx):
    limited = provider.call(REQUEST, {}, ctx, {"url": f"http://127.0.0.1:{allowed.port}/status/429"})
    assert (limited.outcome, limited.retry_after) == ("rate_limited", 7.0)
    short = CallContext(client=ctx.client, api_key=None, base_url="", timeout=0.2)
    slow = provider.call(REQUEST, {}, short, {"url": f"http://127.0.0.1:{allowed.port}/slow"})
    assert slow.outcome == "retryable"


def test_redirects_large_and_non_json_answers_are_refused(allowed, ctx):
    base = f"http://127.0.0.1:{allowed.port}"
    redirected = provider.call(REQUEST, {}, ctx, {"url": base + "/redirect"})
    assert redirected.outcome == "invalid_input" and "redirect" in redirected.message
    assert provider.call(REQUEST, {}, ctx, {"url": base + "/big"}).message == "the answer is too large"
    assert provider.call(REQUEST, {}, ctx, {"url": base + "/html"}).outcome == "invalid_input"


def test_a_name_is_connected_to_the_checked_address(allowed, ctx):
    result = provider.call(REQUEST, {}, ctx, {"url": f"http://localhost:{allowed.port}/companies?domain=a.io"})
    assert result.outcome == "hit"
    assert allowed.received[0]["headers"]["Host"] == f"localhost:{allowed.port}"


@pytest.mark.parametrize(
    "url",
    ["http://127.0.0.1:{port}/companies", "http://localhost:{port}/companies", "http://169.254.169.254/latest/meta-data",
     "http://[::1]:{port}/", "http://10.0.0.8/", "http://0.0.0.0:{port}/"],
)  # fmt: skip
def test_internal_addresses_are_refused_without_a_request(app, api, ctx, url):
    api.received.clear()
    with app.app_context():
        result = provider.call(REQUEST, {}, ctx, {"url": url.format(port=api.port)})
    assert result.outcome == "invalid_input" and "does not fetch" in result.message
    assert api.received == []


def test_bad_options_are_invalid_input_with_a_message(ctx):
    assert "method" in provider.call(REQUEST, {}, ctx, {"url": "https://a.io", "method": "TRACE"}).message
    assert "url" in provider.call(REQUEST, {}, ctx, {}).message
    assert "http" in provider.call(REQUEST, {}, ctx, {"url": "file:///etc/passwd"}).message
    with pytest.raises(OptionsError, match="JSONPath"):
        check_options({"url": "https://a.io", "outputs": {"x": "$[[["}})
    with pytest.raises(OptionsError, match="cannot be set"):
        check_options({"url": "https://a.io", "headers": {"Host": "evil"}})
    assert template_inputs({"url": "https://a.io/{{domain}}", "body": "{{ name }}", "headers": {"X": "{{key}}"}}) == [
        "domain",
        "name",
        "key",
    ]
