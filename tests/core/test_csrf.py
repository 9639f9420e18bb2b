"""CSRF: a form POST without the token is refused; htmx sends it in a header and passes."""

import re


def _csrf_token(client) -> str:
    page = client.get("/login").get_data(as_text=True)
    match = re.search(r'"X-CSRFToken": "([^"]+)"', page)
    assert match, "the page should carry the CSRF token in the body's hx-headers"
    return match.group(1)


def test_a_form_post_without_the_token_is_refused_with_a_page(client):
    _csrf_token(client)
    resp = client.post("/logout", data={})
    assert resp.status_code == 400
    assert resp.mimetype == "text/html"
    assert "Reload and try again" in resp.get_data(as_text=True)


def test_a_form_post_with_a_forged_token_is_refused(client):
    _csrf_token(client)
    resp = client.post("/login", data={"csrf_token": "forged", "email": "a@example.com", "password": "x" * 12})
    assert resp.status_code == 400


def test_an_htmx_post_with_the_header_token_passes(client):
    token = _csrf_token(client)
    resp = client.post("/logout", headers={"X-CSRFToken": token, "HX-Request": "true"})
    assert resp.status_code == 302


def test_a_form_post_with_the_form_token_passes(client):
    token = _csrf_token(client)
    resp = client.post("/logout", data={"csrf_token": token})
    assert resp.status_code == 302


def test_the_json_api_needs_no_csrf_token(client):
    resp = client.post("/api/v1/auth/token", json={"email": "nobody@example.com", "password": "x", "workspace": "w"})
    assert resp.status_code == 401
    assert resp.get_json()["error"]["code"] == "unauthorized"
