"""Logging in and out: credentials, safe redirects, disabled accounts, lockout, rate limits, rehash."""

from __future__ import annotations

import logging
from datetime import timedelta

import pytest
from argon2 import PasswordHasher
from sqlalchemy import select, update

from morket.accounts.models import LoginFailure, User
from morket.core.db import utcnow
from morket.core.security import needs_rehash
from tests.accounts.support import log_in, next_ip, page_csrf, post_form
from tests.factories import PASSWORD, UserFactory


def _logged_in(client) -> bool:
    return client.get("/settings").status_code == 200


def test_login_and_logout(client, db):
    user = UserFactory()
    resp = log_in(client, user.email.upper(), PASSWORD)
    assert resp.status_code == 302
    assert _logged_in(client)
    db.session.refresh(user)
    assert user.last_login_at is not None

    resp = post_form(client, "/logout", {}, csrf_from="/settings")
    assert resp.status_code == 302
    assert not _logged_in(client)


def test_wrong_password_and_unknown_email_get_the_same_answer(client, db):
    user = UserFactory()
    wrong = log_in(client, user.email, "not the password")
    unknown = log_in(client, "nobody@example.com", "not the password")
    assert wrong.status_code == unknown.status_code == 401
    assert "Incorrect email or password." in wrong.get_data(as_text=True)
    assert "Incorrect email or password." in unknown.get_data(as_text=True)
    assert not _logged_in(client)


def test_disabled_account_cannot_log_in(client, db):
    user = UserFactory(disabled_at=utcnow())
    resp = log_in(client, user.email, PASSWORD)
    assert resp.status_code == 403
    assert "This account is disabled" in resp.get_data(as_text=True)
    assert not _logged_in(client)


@pytest.mark.parametrize("target", ["/settings", "/w/acme/tables?view=3"])
def test_login_follows_a_same_site_next(client, db, target):
    user = UserFactory()
    resp = log_in(client, user.email, PASSWORD, next=target)
    assert resp.status_code == 302
    assert resp.headers["Location"] == target


@pytest.mark.parametrize(
    "target",
    [
        "https://evil.example/phish",
        "//evil.example/phish",
        "/\\evil.example",
        "\\\\evil.example",
        "javascript:alert(1)",
        "http:/evil.example",
        "/\t/evil.example",
        "evil.example",
    ],
)
def test_login_refuses_an_off_site_next(client, db, target):
    user = UserFactory()
    resp = log_in(client, user.email, PASSWORD, next=target)
    assert resp.status_code == 302
    assert resp.headers["Location"] in {"/", "http://localhost/"}


def test_login_page_drops_an_off_site_next_from_the_query(client, db):
    page = client.get("/login?next=//evil.example").get_data(as_text=True)
    assert "evil.example" not in page
    page = client.get("/login?next=/settings").get_data(as_text=True)
    assert 'value="/settings"' in page


def test_five_failures_lock_the_account_even_for_the_right_password(client, db, caplog):
    user = UserFactory()
    caplog.set_level(logging.WARNING, logger="morket.security")
    statuses = [log_in(client, user.email, f"wrong password {i}").status_code for i in range(5)]
    assert statuses == [401, 401, 401, 401, 423]

    resp = log_in(client, user.email, PASSWORD)
    assert resp.status_code == 423
    text = resp.get_data(as_text=True)
    assert "locked" in text
    assert "Try again in 15 minutes" in text
    assert not _logged_in(client)

    events = [r.getMessage() for r in caplog.records if r.name == "morket.security"]
    assert events.count("login_failed") == 5
    assert "account_locked" in events and "login_refused_locked" in events
    assert not any("wrong password" in str(getattr(r, "data", "")) for r in caplog.records)

    # The lock lasts 15 minutes from the fifth failure: move the failures into the past.
    db.session.execute(
        update(LoginFailure).where(LoginFailure.user_id == user.id).values(at=LoginFailure.at - timedelta(minutes=16))
    )
    db.session.commit()
    assert log_in(client, user.email, PASSWORD).status_code == 302
    assert db.session.scalars(select(LoginFailure).where(LoginFailure.user_id == user.id)).all() == []


def test_failures_spread_over_more_than_15_minutes_do_not_lock(client, db):
    user = UserFactory()
    for minutes in (40, 30, 20, 16):
        db.session.add(LoginFailure(user_id=user.id, at=utcnow() - timedelta(minutes=minutes), ip="10.0.0.1"))
    db.session.commit()
    assert log_in(client, user.email, "wrong password!").status_code == 401
    assert log_in(client, user.email, PASSWORD).status_code == 302


def test_a_successful_login_resets_the_failure_count(client, db):
    user = UserFactory()
    for i in range(4):
        assert log_in(client, user.email, f"wrong {i}").status_code == 401
    assert log_in(client, user.email, PASSWORD).status_code == 302
    post_form(client, "/logout", {}, csrf_from="/settings")
    assert log_in(client, user.email, "wrong again").status_code == 401


def test_login_posts_are_rate_limited_per_ip(client, db):
    statuses = []
    for _ in range(6):
        token = page_csrf(client, "/login")
        resp = client.post(
            "/login",
            data={"csrf_token": token, "email": "nobody@example.com", "password": "whatever"},
            environ_base={"REMOTE_ADDR": "192.0.2.7"},
        )
        statuses.append(resp.status_code)
    assert statuses[:5] == [401] * 5
    assert statuses[5] == 429
    assert int(resp.headers["Retry-After"]) > 0
    # Another address is not affected, and GET stays open.
    assert log_in(client, "nobody@example.com", "whatever", ip=next_ip()).status_code == 401
    assert client.get("/login", environ_base={"REMOTE_ADDR": "192.0.2.7"}).status_code == 200


def test_login_upgrades_a_hash_made_with_old_parameters(client, db):
    old_hash = PasswordHasher(time_cost=1, memory_cost=8192, parallelism=1).hash(PASSWORD)
    user = UserFactory(password_hash=old_hash)
    assert needs_rehash(old_hash)
    assert log_in(client, user.email, PASSWORD).status_code == 302
    db.session.refresh(user)
    assert user.password_hash != old_hash
    assert user.password_hash.startswith("$argon2id$")
    assert not needs_rehash(user.password_hash)
    post_form(client, "/logout", {}, csrf_from="/settings")
    assert log_in(client, user.email, PASSWORD).status_code == 302


def test_login_without_csrf_token_is_refused(client, db):
    user = UserFactory()
    resp = client.post("/login", data={"email": user.email, "password": PASSWORD})
    assert resp.status_code == 400
    assert not _logged_in(client)


def test_unverified_user_can_log_in_and_sees_the_banner(client, db):
    user = UserFactory(email_verified_at=None)
    assert log_in(client, user.email, PASSWORD).status_code == 302
    page = client.get("/settings").get_data(as_text=True)
    assert 'id="verify-banner"' in page
    assert db.session.get(User, user.id).is_verified is False
