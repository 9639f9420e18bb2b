"""Security headers, request ids and body-size limits on every kind of response."""

import pytest

EXPECTED = {
    "Strict-Transport-Security": "max-age=63072000; includeSubDomains",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "strict-origin-when-cross-origin",
}


def _assert_security_headers(resp):
    for name, value in EXPECTED.items():
        assert resp.headers.get(name) == value, name
    assert "camera=()" in resp.headers["Permissions-Policy"]
    csp = resp.headers["Content-Security-Policy"]
    assert "default-src 'self'" in csp
    assert "frame-ancestors 'none'" in csp
    assert "unsafe-inline" not in csp
    assert "unsafe-eval" not in csp


@pytest.mark.parametrize("path", ["/", "/healthz", "/no-such-page", "/api/v1/no-such-thing", "/static/css/app.css"])
def test_every_response_carries_the_security_headers(client, path):
    resp = client.get(path)
    resp.close()
    _assert_security_headers(resp)


def test_api_errors_are_json_envelopes_with_headers(client):
    resp = client.get("/api/v1/no-such-thing")
    assert resp.status_code == 404
    assert resp.mimetype == "application/json"
    assert resp.get_json() == {
        "success": False,
        "data": None,
        "error": {"code": "not_found", "message": resp.get_json()["error"]["message"], "fields": {}},
        "meta": {},
    }
    _assert_security_headers(resp)


def test_a_plain_request_id_is_echoed(client):
    resp = client.get("/healthz", headers={"X-Request-Id": "trace-0123456789"})
    assert resp.headers["X-Request-Id"] == "trace-0123456789"


@pytest.mark.parametrize("incoming", ["short", "x" * 65, "bad id with spaces", "<script>alert(1)</script>"])
def test_an_unusable_request_id_is_replaced_by_a_fresh_one(client, incoming):
    resp = client.get("/healthz", headers={"X-Request-Id": incoming})
    echoed = resp.headers["X-Request-Id"]
    assert echoed != incoming
    assert len(echoed) == 32 and all(c in "0123456789abcdef" for c in echoed)


def test_each_request_without_an_id_gets_its_own(client):
    first = client.get("/healthz").headers["X-Request-Id"]
    second = client.get("/healthz").headers["X-Request-Id"]
    assert first and second and first != second


def test_a_json_body_over_the_limit_is_refused_with_413(client, app):
    limit = app.config["MORKET"]["MAX_JSON_BYTES"]
    body = b'{"x": "' + b"a" * limit + b'"}'
    resp = client.post("/api/v1/anything", data=body, content_type="application/json")
    assert resp.status_code == 413
    assert resp.get_json()["error"]["code"] == "payload_too_large"
    _assert_security_headers(resp)


def test_a_chunked_json_body_without_length_over_the_limit_is_refused_with_413(client, app):
    import io

    limit = app.config["MORKET"]["MAX_JSON_BYTES"]
    stream = io.BytesIO(b'{"x": "' + b"a" * limit + b'"}')
    resp = client.post(
        "/api/v1/anything",
        input_stream=stream,
        content_type="application/json",
        headers={"Transfer-Encoding": "chunked"},
        environ_overrides={"wsgi.input_terminated": True},
    )
    assert resp.status_code == 413
    assert resp.get_json()["error"]["code"] == "payload_too_large"


def test_a_json_body_under_the_limit_reaches_routing(client):
    resp = client.post("/api/v1/anything", json={"x": "small"})
    assert resp.status_code == 404
