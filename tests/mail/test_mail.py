"""Email: recorded, released only after commit, delivered once over real SMTP, dev mailbox pages."""

from __future__ import annotations

from contextlib import contextmanager
from types import SimpleNamespace

import pytest
from sqlalchemy import select

from morket import create_app
from morket.core.models import MailMessage, OutboxMessage
from morket.devservices import free_port
from morket.mail.service import send_email
from morket.mail.tasks import deliver_email
from morket.system.mailbox import linkify

SCRIPT_NAME = "<script>alert(1)</script>"


def _send(to: str, name: str = "Ada", link: str = "https://app.example/verify/abc?x=1&y=2") -> MailMessage:
    return send_email(to, "Confirm your email for Morket", "verify_email", user=SimpleNamespace(name=name), link=link)


@contextmanager
def _smtp_settings(app, **overrides):
    saved = dict(app.config["MORKET"])
    app.config["MORKET"].update(overrides)
    try:
        yield
    finally:
        app.config["MORKET"].clear()
        app.config["MORKET"].update(saved)


def test_email_is_delivered_over_smtp_after_commit(app, db, run_jobs, smtp_server):
    message = _send("smtp.after.commit@example.com")
    assert db.session.scalar(select(OutboxMessage).where(OutboxMessage.job_id == f"mail-{message.id}")) is not None
    db.session.commit()
    run_jobs()

    [received] = smtp_server.wait_for("smtp.after.commit@example.com")
    assert received.subject == "Confirm your email for Morket"
    assert "https://app.example/verify/abc?x=1&y=2" in received.text
    assert received.message["From"] == app.config["MORKET"]["MAIL_FROM"]
    assert received.message["Message-ID"] == f"<morket-mail-{message.id}@morket.local>"
    html = received.message.get_body(preferencelist=("html",)).get_content()
    assert 'href="https://app.example/verify/abc?x=1&amp;y=2"' in html

    db.session.refresh(message)
    assert message.transport == "smtp"
    assert message.sent_at is not None
    assert message.error is None


def test_email_of_a_rolled_back_transaction_never_leaves(app, db, run_jobs, smtp_server):
    message = _send("rolled.back@example.com")
    message_id = message.id
    db.session.rollback()
    run_jobs()
    assert db.session.get(MailMessage, message_id) is None
    assert smtp_server.to("rolled.back@example.com") == []


def test_delivery_is_idempotent(app, db, smtp_server):
    message = _send("only.once@example.com")
    db.session.commit()
    assert deliver_email(message.id) == "smtp"
    db.session.commit()
    assert deliver_email(message.id) == "smtp"
    db.session.commit()
    smtp_server.wait_for("only.once@example.com")
    assert len(smtp_server.to("only.once@example.com")) == 1


def test_failed_delivery_is_recorded_and_raised_then_retried(app, db, smtp_server):
    message = _send("retry.me@example.com")
    db.session.commit()
    with _smtp_settings(app, SMTP_PORT=free_port()), pytest.raises(OSError):
        deliver_email(message.id)
    db.session.rollback()  # as the job runner does when a task raises
    db.session.refresh(message)
    assert message.sent_at is None
    assert "ConnectionRefusedError" in message.error

    assert deliver_email(message.id) == "smtp"
    db.session.commit()
    db.session.refresh(message)
    assert message.error is None
    assert len(smtp_server.wait_for("retry.me@example.com")) == 1


def test_without_smtp_mail_goes_to_the_dev_mailbox(app, db, smtp_server):
    message = _send("mailbox.only@example.com")
    db.session.commit()
    with _smtp_settings(app, SMTP_HOST=""):
        assert deliver_email(message.id) == "mailbox"
        db.session.commit()
        assert deliver_email(message.id) == "mailbox"
    db.session.refresh(message)
    assert message.transport == "mailbox"
    assert message.sent_at is not None
    assert smtp_server.to("mailbox.only@example.com") == []


def test_send_email_refuses_header_injection_and_bad_template_names(app, db):
    with pytest.raises(ValueError):
        send_email("a@example.com\r\nBcc: victim@example.com", "Hi", "verify_email", user=None, link="")
    with pytest.raises(ValueError):
        send_email("a@example.com", "Hi\nBcc: victim@example.com", "verify_email", user=None, link="")
    with pytest.raises(ValueError):
        send_email("a@example.com", "Hi", "../base", user=None, link="")


def test_dev_mailbox_lists_newest_first_and_shows_a_message_safely(client, db):
    older = _send("first@example.com", name="Older")
    newer = _send("second@example.com", name=SCRIPT_NAME, link="https://app.example/verify/tok?a=1&b=2.")
    db.session.commit()

    page = client.get("/dev/mailbox").get_data(as_text=True)
    assert page.index("second@example.com") < page.index("first@example.com")
    assert "Confirm your email for Morket" in page

    resp = client.get(f"/dev/mailbox/{newer.id}")
    assert resp.status_code == 200
    body = resp.get_data(as_text=True)
    assert SCRIPT_NAME not in body
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in body
    assert '<a href="https://app.example/verify/tok?a=1&amp;b=2" rel="noopener noreferrer">' in body
    assert client.get(f"/dev/mailbox/{older.id}").status_code == 200
    assert client.get("/dev/mailbox/999999999").status_code == 404


def test_dev_mailbox_empty_state(client, db):
    db.session.execute(MailMessage.__table__.delete())
    db.session.commit()
    page = client.get("/dev/mailbox").get_data(as_text=True)
    assert "No email yet" in page


def test_dev_mailbox_is_not_found_in_production(app, db, database_url, services):
    message = _send("prod@example.com")
    db.session.commit()
    prod = create_app(
        {
            "SQLALCHEMY_DATABASE_URI": database_url,
            "REDIS_URL": services["redis"],
            "RATELIMIT_STORAGE_URI": services["redis"],
            "SERVER_NAME": "localhost",
            "MORKET": {"ENV": "production"},
        }
    )
    try:
        client = prod.test_client()
        assert client.get("/dev/mailbox").status_code == 404
        assert client.get(f"/dev/mailbox/{message.id}").status_code == 404
        assert "Dev mailbox" not in client.get("/login").get_data(as_text=True)
    finally:
        from morket.extensions import db as extension

        with prod.app_context():
            extension.engine.dispose()
        prod.extensions["morket_redis"].close()


@pytest.mark.parametrize(
    ("text", "html"),
    [
        (
            "see https://a.example/x.",
            'see <a href="https://a.example/x" rel="noopener noreferrer">https://a.example/x</a>.',
        ),
        (
            "<b>http://a.example</b>",
            '&lt;b&gt;<a href="http://a.example" rel="noopener noreferrer">http://a.example</a>&lt;/b&gt;',
        ),
        ("javascript:alert(1)", "javascript:alert(1)"),
        (
            '"https://a.example/"onmouseover="x"',
            '&#34;<a href="https://a.example/" rel="noopener noreferrer">https://a.example/</a>&#34;onmouseover=&#34;x&#34;',
        ),
    ],
)
def test_linkify_escapes_then_links_only_http_urls(text, html):
    assert str(linkify(text)) == html
