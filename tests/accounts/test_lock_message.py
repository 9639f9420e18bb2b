"""While an account is locked, every further attempt says so and until when, whichever limit answers."""

from __future__ import annotations

import re

from tests.accounts.support import page_csrf
from tests.factories import PASSWORD, UserFactory

LOCK = re.compile(r"locked for now\. Try again in \d+ minutes? \(after \d\d:\d\d UTC\)")


def _attempt(client, email: str, password: str):
    token = page_csrf(client, "/login")
    return client.post(
        "/login",
        data={"csrf_token": token, "email": email, "password": password},
        environ_base={"REMOTE_ADDR": "192.0.2.44"},
    )


def test_attempts_past_the_rate_limit_show_the_lock_not_too_many_requests(client, db):
    user = UserFactory()
    answers = [_attempt(client, user.email, f"wrong {i}") for i in range(5)]
    assert [r.status_code for r in answers] == [401, 401, 401, 401, 423]
    for password in ("wrong again", PASSWORD):
        # The sixth and seventh posts from this address within the minute meet the 5-a-minute limit.
        resp = _attempt(client, user.email.upper(), password)
        body = resp.get_data(as_text=True)
        assert resp.status_code == 423
        assert LOCK.search(body) and "Too many requests" not in body
        assert 'id="email"' in body  # the login form, to try again once the time has passed


def test_a_rate_limited_attempt_for_an_account_that_is_not_locked_is_a_429(client, db):
    user = UserFactory()
    for _ in range(5):
        _attempt(client, "nobody@example.com", "whatever")
    resp = _attempt(client, user.email, "wrong")
    assert resp.status_code == 429 and "Retry-After" in resp.headers
    assert "Wait a moment, then try again." in resp.get_data(as_text=True)
