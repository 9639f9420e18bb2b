"""Helpers for the account tests: CSRF tokens from real pages, form posts and sign-ups."""

from __future__ import annotations

import itertools
import re
from pathlib import Path

from tests.conftest import BrowserClient

ROOT = Path(__file__).resolve().parents[2]
_CSRF_HEADER = re.compile(r'"X-CSRFToken": "([^"]+)"')
_LINK = re.compile(r"https?://\S+")
_ips = itertools.count(1)


def browser(app) -> BrowserClient:
    """Return a new client with its own cookies, like a separate browser."""
    return BrowserClient(app, app.response_class, use_cookies=True)


def next_ip() -> str:
    """Return a fresh client address so per-IP rate limits do not couple unrelated requests."""
    n = next(_ips)
    return f"10.{(n >> 16) & 255}.{(n >> 8) & 255}.{n & 255}"


def page_csrf(client, path: str = "/login", ip: str | None = None) -> str:
    """GET ``path`` (from ``ip``, a fresh address by default) and return the page's CSRF token."""
    resp = client.get(path, environ_base={"REMOTE_ADDR": ip or next_ip()})
    assert resp.status_code == 200, f"GET {path} answered {resp.status_code}"
    match = _CSRF_HEADER.search(resp.get_data(as_text=True))
    assert match, f"no CSRF token on {path}"
    return match.group(1)


def post_form(
    client, path: str, data: dict, *, csrf_from: str | None = None, ip: str | None = None, csrf_field="csrf_token"
):
    """POST ``data`` to ``path`` with a valid CSRF token, from ``ip`` (a fresh address by default)."""
    token = page_csrf(client, csrf_from or path)
    return client.post(path, data={csrf_field: token, **data}, environ_base={"REMOTE_ADDR": ip or next_ip()})


def log_in(client, email: str, password: str, *, ip: str | None = None, next: str | None = None):
    """Log in through the real form; return the response."""
    data = {"email": email, "password": password}
    if next is not None:
        data["next"] = next
    return post_form(client, "/login", data, ip=ip)


SIGNUP_PASSWORD = "a long enough password"


def sign_up(client, email: str, password: str = SIGNUP_PASSWORD, name: str = "Ada Lovelace"):
    """Sign up through the real form; return the response."""
    return post_form(client, "/signup", {"email": email, "name": name, "password": password, "confirm": password})


def link_in(text: str) -> str:
    """Return the first URL in an email body."""
    match = _LINK.search(text)
    assert match, f"no link in email:\n{text}"
    return match.group(0)
