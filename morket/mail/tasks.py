"""Deliver recorded email over SMTP, or into the dev mailbox when no SMTP server is configured."""

from __future__ import annotations

import logging
import smtplib
import ssl
from email.message import EmailMessage
from email.utils import format_datetime, parseaddr
from urllib.parse import urlsplit

from flask import current_app
from sqlalchemy import select

from morket.core.db import utcnow
from morket.core.logging import redact
from morket.core.models import MailMessage
from morket.extensions import db

log = logging.getLogger("morket.mail")

SMTP_TIMEOUT_SECONDS = 15
TRANSPORT_SMTP = "smtp"
TRANSPORT_MAILBOX = "mailbox"


def build_message(message: MailMessage, sender: str) -> EmailMessage:
    """Return the MIME message (text, plus an HTML alternative) for a recorded MailMessage."""
    domain = parseaddr(sender)[1].rpartition("@")[2] or "morket.local"
    mime = EmailMessage()
    mime["From"] = sender
    mime["To"] = message.to_address
    mime["Subject"] = message.subject
    mime["Date"] = format_datetime(message.created_at)
    # One Message-ID per row: a retried delivery carries the same id, so receivers can dedupe.
    mime["Message-ID"] = f"<morket-mail-{message.id}@{domain}>"
    mime.set_content(message.text_body)
    if message.html_body:
        mime.add_alternative(message.html_body, subtype="html")
    return mime


def _send_smtp(mime: EmailMessage, settings: dict) -> None:
    local_hostname = urlsplit(settings["BASE_URL"]).hostname or "localhost"
    with smtplib.SMTP(
        settings["SMTP_HOST"], settings["SMTP_PORT"], local_hostname=local_hostname, timeout=SMTP_TIMEOUT_SECONDS
    ) as smtp:
        if settings["SMTP_STARTTLS"]:
            smtp.starttls(context=ssl.create_default_context())
        if settings["SMTP_USERNAME"]:
            smtp.login(settings["SMTP_USERNAME"], settings["SMTP_PASSWORD"])
        smtp.send_message(mime)


def deliver_email(message_id: int) -> str | None:
    """Deliver MailMessage ``message_id`` once; record a failure in ``error`` and re-raise so RQ retries."""
    # The row lock makes a second, concurrent run wait and then see sent_at: never sent twice.
    message = db.session.scalar(select(MailMessage).where(MailMessage.id == message_id).with_for_update())
    if message is None:
        log.warning("mail message to deliver does not exist", extra={"data": {"message_id": message_id}})
        return None
    if message.sent_at is not None:
        return message.transport
    settings = current_app.config["MORKET"]
    if not settings["SMTP_HOST"]:
        message.transport = TRANSPORT_MAILBOX
        message.sent_at = utcnow()
        message.error = None
        return message.transport
    try:
        _send_smtp(build_message(message, settings["MAIL_FROM"]), settings)
    except (smtplib.SMTPException, OSError) as exc:
        message.error = redact(f"{type(exc).__name__}: {exc}")[:2000]
        # Commit the error now: the job runner rolls back when the task raises.
        db.session.commit()
        log.warning("email delivery failed; RQ will retry", extra={"data": {"message_id": message_id}})
        raise
    message.transport = TRANSPORT_SMTP
    message.sent_at = utcnow()
    message.error = None
    return message.transport
