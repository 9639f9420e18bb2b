"""Sign-up, the verification email over real SMTP, and confirming the address."""

from __future__ import annotations

from urllib.parse import urlsplit

from sqlalchemy import select

from morket.accounts.models import User, UserToken
from morket.accounts.service import require_verified
from morket.core.errors import Forbidden
from tests.accounts.support import SIGNUP_PASSWORD, browser, link_in, post_form, sign_up


def test_signup_sends_verification_email_whose_link_verifies(client, db, run_jobs, smtp_server):
    resp = sign_up(client, "Ada@Example.com")
    assert resp.status_code == 302
    assert resp.headers["Location"].endswith("/signup/check-inbox")

    page = client.get("/signup/check-inbox").get_data(as_text=True)
    assert "Check your inbox" in page
    assert "ada@example.com" in page
    assert 'id="verify-banner"' in page  # unverified users see the banner

    user = db.session.scalar(select(User).where(User.email == "ada@example.com"))
    assert user is not None and not user.is_verified
    try:
        require_verified(user)
        raise AssertionError("an unverified user passed require_verified")
    except Forbidden:
        pass

    run_jobs()
    [mail] = smtp_server.wait_for("ada@example.com")
    assert mail.subject == "Confirm your email for Morket"
    link = link_in(mail.text)
    assert urlsplit(link).path.startswith("/verify/")
    # The token is stored hashed: the raw one from the email is nowhere in the database.
    token = urlsplit(link).path.rsplit("/", 1)[1]
    assert db.session.scalar(select(UserToken).where(UserToken.token_hash == token)) is None

    resp = client.get(urlsplit(link).path)
    assert resp.status_code == 302
    db.session.refresh(user)
    assert user.is_verified
    page = client.get("/settings").get_data(as_text=True)
    assert 'id="verify-banner"' not in page
    assert "confirmed" in page

    again = client.get(urlsplit(link).path)
    assert again.status_code == 400
    assert "invalid, already used or expired" in again.get_data(as_text=True)


def test_resend_sends_a_second_working_link(client, db, run_jobs, smtp_server):
    sign_up(client, "resend@example.com")
    resp = post_form(client, "/verify/resend", {}, csrf_from="/signup/check-inbox")
    assert resp.status_code == 302
    run_jobs()
    mails = smtp_server.wait_for("resend@example.com", count=2)
    client.get(urlsplit(link_in(mails[-1].text)).path)
    user = db.session.scalar(select(User).where(User.email == "resend@example.com"))
    assert user.is_verified


def test_bad_verification_tokens_get_a_clear_page(client, db):
    for token in ["short", "x" * 43, "a" * 300, "%3Cscript%3E"]:
        resp = client.get(f"/verify/{token}")
        assert resp.status_code in {400, 404}
        assert resp.status_code != 500


def test_signup_validation_errors_are_shown_and_create_nothing(client, db):
    cases = [
        (
            {"email": "not-an-email", "name": "A", "password": SIGNUP_PASSWORD, "confirm": SIGNUP_PASSWORD},
            "valid email",
        ),
        ({"email": "a@example.com", "name": "A", "password": "short", "confirm": "short"}, "between 10 and 128"),
        ({"email": "a@example.com", "name": "A", "password": "x" * 129, "confirm": "x" * 129}, "between 10 and 128"),
        (
            {
                "email": "long.email@example.com",
                "name": "A",
                "password": "Long.Email@example.com",
                "confirm": "Long.Email@example.com",
            },
            "cannot be your email",
        ),
        (
            {"email": "a@example.com", "name": "A", "password": SIGNUP_PASSWORD, "confirm": "something else!"},
            "do not match",
        ),
        (
            {"email": "a@example.com", "name": "   ", "password": SIGNUP_PASSWORD, "confirm": SIGNUP_PASSWORD},
            "Enter your name",
        ),
    ]
    for bad_name in ["Ada\x00", "Ada\u202e", "\tA\x07"]:
        cases.append(
            (
                {"email": "n@example.com", "name": bad_name, "password": SIGNUP_PASSWORD, "confirm": SIGNUP_PASSWORD},
                "Use letters",
            )
        )
    for data, message in cases:
        resp = post_form(client, "/signup", data)
        assert resp.status_code == 422, data
        assert message in resp.get_data(as_text=True), (data, message)
    assert db.session.scalars(select(User)).all() == []


def test_signup_with_a_taken_email_says_so(client, db):
    assert sign_up(client, "taken@example.com").status_code == 302
    other = browser(client.application)
    resp = sign_up(other, "TAKEN@example.com")
    assert resp.status_code == 422
    assert "already exists" in resp.get_data(as_text=True)
    assert len(db.session.scalars(select(User).where(User.email == "taken@example.com")).all()) == 1


def test_signup_without_csrf_token_is_refused(client, db):
    resp = client.post(
        "/signup",
        data={"email": "c@example.com", "name": "C", "password": SIGNUP_PASSWORD, "confirm": SIGNUP_PASSWORD},
    )
    assert resp.status_code == 400
    assert db.session.scalar(select(User).where(User.email == "c@example.com")) is None
