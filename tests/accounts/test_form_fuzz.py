"""Property tests: whatever a sign-up or login form carries, the answer is never a server error."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.accounts.support import SIGNUP_PASSWORD, next_ip, page_csrf
from tests.factories import UserFactory

FUZZ = settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])

_tricky = st.sampled_from(
    [
        "",
        " ",
        "\x00",
        "a\x00b@example.com",
        "Ada\x00Lovelace",
        "ada@example.com",
        "ADA@EXAMPLE.COM ",
        "ada@localhost",
        "x" * 5000,
        "ü" * 200 + "@example.com",
        "'; DROP TABLE users; --",
        "<script>alert(1)</script>",
        "\ud7ff\U0010ffff",
        "a long enough password",
        "//evil.example",
        "https://evil.example",
    ]
)
_ascii = st.text(alphabet=st.characters(max_codepoint=127), max_size=12)
_value = st.one_of(_tricky, st.text(max_size=300), _ascii, st.emails(), _tricky)
_field = st.one_of(_value, st.lists(_value, min_size=2, max_size=3))


def _payload(*names: str, valid: dict[str, str], fresh_email: bool):
    """Either a random form, or a valid one with a single field replaced, so deep paths are reached too.

    With ``fresh_email`` the valid form gets a new address each time, so sign-ups reach the insert.
    """
    random_form = st.dictionaries(st.sampled_from([*names, "csrf_token", "extra"]), _field, max_size=len(names) + 2)

    def _mutate(args: tuple[str, object, int]) -> dict:
        name, value, n = args
        form = {**valid, "email": f"fuzz{n}@example.com"} if fresh_email else dict(valid)
        return {**form, name: value}

    one_bad_field = st.tuples(st.sampled_from(names), _value, st.integers(0, 10**12)).map(_mutate)
    return st.one_of(random_form, one_bad_field, one_bad_field, one_bad_field)


_VALID_SIGNUP = {"email": "fuzz@example.com", "name": "Fuzz", "password": SIGNUP_PASSWORD, "confirm": SIGNUP_PASSWORD}
_VALID_LOGIN = {"email": "fuzz@example.com", "password": SIGNUP_PASSWORD, "next": "/settings"}


def _post(client, path: str, token: str, data: dict):
    body = {"csrf_token": token, **data} if "csrf_token" not in data else data
    return client.post(path, data=body, environ_base={"REMOTE_ADDR": next_ip()})


@FUZZ
@given(data=_payload("email", "name", "password", "confirm", valid=_VALID_SIGNUP, fresh_email=True))
def test_signup_payloads_never_cause_a_server_error(client, data):
    resp = _post(client, "/signup", page_csrf(client, "/signup"), data)
    assert resp.status_code < 500, (data, resp.get_data(as_text=True)[:500])
    if resp.status_code == 302:
        client.post(
            "/logout", data={"csrf_token": page_csrf(client, "/settings")}, environ_base={"REMOTE_ADDR": next_ip()}
        )


@pytest.fixture
def user(db):
    """The account the valid login payload names, so that some examples log in for real."""
    return UserFactory(email=_VALID_LOGIN["email"], password=SIGNUP_PASSWORD)


@FUZZ
@given(data=_payload("email", "password", "next", valid=_VALID_LOGIN, fresh_email=False))
def test_login_payloads_never_cause_a_server_error(client, user, data):
    resp = _post(client, "/login", page_csrf(client, "/login"), data)
    assert resp.status_code < 500, (data, resp.get_data(as_text=True)[:500])
    if resp.status_code == 302:
        location = resp.headers["Location"]
        assert location.startswith("/") and not location.startswith("//")
        client.post(
            "/logout", data={"csrf_token": page_csrf(client, "/settings")}, environ_base={"REMOTE_ADDR": next_ip()}
        )
