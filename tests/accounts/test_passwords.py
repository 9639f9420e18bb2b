"""Password reset by email (through real SMTP) and password change from settings."""

from __future__ import annotations

import re
from datetime import timedelta
from urllib.parse import urlsplit

from sqlalchemy import select

from morket.accounts.models import RefreshToken, User
from morket.core.db import utcnow
from morket.core.security import hash_token, new_token
from morket.extensions import db
from tests.accounts.support import browser, link_in, log_in, page_csrf, post_form
from tests.factories import PASSWORD, UserFactory, WorkspaceFactory

NEW_PASSWORD = "a brand new passphrase"


def _refresh_token(user: User) -> RefreshToken:
    token = RefreshToken(
        user_id=user.id,
        workspace_id=WorkspaceFactory().id,
        family_id=new_token(8),
        token_hash=hash_token(new_token()),
        expires_at=utcnow() + timedelta(days=7),
        family_expires_at=utcnow() + timedelta(days=30),
    )
    db.session.add(token)
    db.session.flush()
    return token


def _reset_link(client, run_jobs, smtp_server, email: str, count: int = 1) -> str:
    resp = post_form(client, "/forgot", {"email": email})
    assert resp.status_code == 200
    run_jobs()
    mails = [m for m in smtp_server.wait_for(email, count=count) if m.subject == "Reset your Morket password"]
    return urlsplit(link_in(mails[-1].text)).path


def test_reset_flow_end_to_end(client, db, run_jobs, smtp_server):
    user = UserFactory(email="reset.flow@example.com")
    refresh = _refresh_token(user)
    other_browser = browser(client.application)
    assert log_in(other_browser, user.email, PASSWORD).status_code == 302
    db.session.commit()

    path = _reset_link(client, run_jobs, smtp_server, user.email)
    assert path.startswith("/reset/")
    assert client.get(path).status_code == 200
    resp = post_form(client, path, {"password": NEW_PASSWORD, "confirm": NEW_PASSWORD})
    assert resp.status_code == 302
    assert resp.headers["Location"].endswith("/login")

    assert log_in(client, user.email, PASSWORD).status_code == 401
    assert log_in(client, user.email, NEW_PASSWORD).status_code == 302
    # Every session that existed before the reset is logged out, and API refresh tokens are revoked.
    assert other_browser.get("/settings").status_code == 302
    db.session.refresh(refresh)
    assert refresh.revoked_at is not None

    # The link is single-use.
    again = client.get(path)
    assert again.status_code == 400
    assert "invalid, already used or expired" in again.get_data(as_text=True)
    token_reuse = post_form(
        client, path, {"password": "yet another passphrase", "confirm": "yet another passphrase"}, csrf_from="/settings"
    )
    assert token_reuse.status_code == 400
    # And the user hears about it.
    run_jobs()
    subjects = [m.subject for m in smtp_server.wait_for(user.email, count=2)]
    assert "Your Morket password was changed" in subjects


def test_using_one_reset_link_voids_the_others(client, db, run_jobs, smtp_server):
    user = UserFactory(email="two.links@example.com")
    first = _reset_link(client, run_jobs, smtp_server, user.email, count=1)
    second = _reset_link(client, run_jobs, smtp_server, user.email, count=2)
    assert first != second
    assert post_form(client, second, {"password": NEW_PASSWORD, "confirm": NEW_PASSWORD}).status_code == 302
    assert client.get(first).status_code == 400


def test_forgot_does_not_reveal_whether_an_account_exists(client, db, run_jobs, smtp_server):
    user = UserFactory(email="known@example.com")
    known = post_form(client, "/forgot", {"email": user.email})
    unknown = post_form(client, "/forgot", {"email": "unknown.person@example.com"})
    assert known.status_code == unknown.status_code == 200
    # The pages differ only in the address and in their CSRF tokens, which are signed with the time
    # (two requests a second apart get different ones).
    token = re.compile(r"[\w-]{20,}\.[\w-]{6}\.[\w-]{20,}")
    strip = lambda r, e: token.sub("<csrf>", r.get_data(as_text=True).replace(e, ""))  # noqa: E731
    assert "if an account exists" in strip(known, user.email).lower()
    assert strip(known, user.email) == strip(unknown, "unknown.person@example.com")
    run_jobs()
    smtp_server.wait_for(user.email)
    assert smtp_server.to("unknown.person@example.com") == []


def test_expired_reset_link_is_refused(client, db, run_jobs, smtp_server):
    from morket.accounts.models import UserToken

    user = UserFactory(email="expired.link@example.com")
    path = _reset_link(client, run_jobs, smtp_server, user.email)
    row = db.session.scalar(select(UserToken).where(UserToken.user_id == user.id))
    row.expires_at = utcnow() - timedelta(seconds=1)
    db.session.commit()
    assert client.get(path).status_code == 400
    assert (
        post_form(client, path, {"password": NEW_PASSWORD, "confirm": NEW_PASSWORD}, csrf_from="/forgot").status_code
        == 400
    )
    assert log_in(client, user.email, PASSWORD).status_code == 302


def test_reset_form_validates_the_new_password(client, db, run_jobs, smtp_server):
    user = UserFactory(email="weak.reset@example.com")
    path = _reset_link(client, run_jobs, smtp_server, user.email)
    for password, message in [("short", "between 10 and 128"), ("weak.reset@example.com", "cannot be your email")]:
        resp = post_form(client, path, {"password": password, "confirm": password})
        assert resp.status_code == 422
        assert message in resp.get_data(as_text=True)
    # The failed attempts did not use the link up.
    assert post_form(client, path, {"password": NEW_PASSWORD, "confirm": NEW_PASSWORD}).status_code == 302


def _change(client, current: str, new: str, confirm: str | None = None):
    token = page_csrf(client, "/settings")
    return client.post(
        "/settings",
        data={
            "password-csrf_token": token,
            "password-current_password": current,
            "password-new_password": new,
            "password-confirm": new if confirm is None else confirm,
            "password-change_password": "Change password",
        },
    )


def test_changing_the_password_logs_out_other_sessions_but_not_this_one(client, db, run_jobs, smtp_server):
    user = UserFactory(email="changer@example.com")
    refresh = _refresh_token(user)
    other = browser(client.application)
    assert log_in(client, user.email, PASSWORD).status_code == 302
    assert log_in(other, user.email, PASSWORD).status_code == 302
    assert other.get("/settings").status_code == 200

    resp = _change(client, PASSWORD, NEW_PASSWORD)
    assert resp.status_code == 302
    assert client.get("/settings").status_code == 200
    assert other.get("/settings").status_code == 302
    db.session.refresh(refresh)
    assert refresh.revoked_at is not None

    run_jobs()
    [notice] = smtp_server.wait_for(user.email)
    assert notice.subject == "Your Morket password was changed"
    assert log_in(other, user.email, NEW_PASSWORD).status_code == 302


def test_change_password_needs_the_current_one(client, db):
    user = UserFactory()
    log_in(client, user.email, PASSWORD)
    resp = _change(client, "not my password", NEW_PASSWORD)
    assert resp.status_code == 422
    assert "current password is not correct" in resp.get_data(as_text=True)
    resp = _change(client, PASSWORD, NEW_PASSWORD, confirm="different passphrase")
    assert resp.status_code == 422
    assert "do not match" in resp.get_data(as_text=True)
    post_form(client, "/logout", {}, csrf_from="/settings")
    assert log_in(client, user.email, PASSWORD).status_code == 302


def test_settings_changes_the_name(client, db):
    user = UserFactory()
    log_in(client, user.email, PASSWORD)
    token = page_csrf(client, "/settings")
    resp = client.post(
        "/settings",
        data={"profile-csrf_token": token, "profile-name": "  Grace Hopper ", "profile-save_profile": "Save"},
    )
    assert resp.status_code == 302
    db.session.refresh(user)
    assert user.name == "Grace Hopper"
    empty = client.post(
        "/settings", data={"profile-csrf_token": token, "profile-name": " ", "profile-save_profile": "Save"}
    )
    assert empty.status_code == 422
    assert "Enter your name" in empty.get_data(as_text=True)


def test_settings_needs_login(client, db):
    resp = client.get("/settings")
    assert resp.status_code == 302
    assert "/login?next=" in resp.headers["Location"]
