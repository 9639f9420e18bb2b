"""Send email: render the templates, record a MailMessage, deliver after the transaction commits."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlsplit

from flask import current_app, render_template

from morket.core.jobs import QUEUE_IO, enqueue_after_commit
from morket.core.models import MailMessage
from morket.extensions import db

_TEMPLATE_NAME = re.compile(r"[a-z0-9_]+")
SUBJECT_MAX = 300


def absolute_url(endpoint: str, **values: Any) -> str:
    """Build an absolute link to ``endpoint`` on MORKET_BASE_URL, with or without a request."""
    base = urlsplit(current_app.config["MORKET"]["BASE_URL"])
    adapter = current_app.url_map.bind(base.netloc, script_name=base.path or "/", url_scheme=base.scheme or "http")
    return adapter.build(endpoint, values, force_external=True)


def send_email(to: str, subject: str, template: str, **context: Any) -> MailMessage:
    """Render templates/emails/<template>.txt and .html, record the message, deliver it after commit."""
    if not _TEMPLATE_NAME.fullmatch(template):
        raise ValueError(f"invalid email template name {template!r}")
    if "\r" in subject or "\n" in subject or "\r" in to or "\n" in to:
        raise ValueError("email subject and recipient must be one line")
    context.setdefault("base_url", current_app.config["MORKET"]["BASE_URL"])
    text_body = render_template(f"emails/{template}.txt", subject=subject, **context)
    html_body = render_template(f"emails/{template}.html", subject=subject, **context)
    message = MailMessage(
        to_address=to.strip(), subject=subject[:SUBJECT_MAX], text_body=text_body, html_body=html_body
    )
    db.session.add(message)
    db.session.flush()
    enqueue_after_commit("morket.mail.tasks.deliver_email", message.id, queue=QUEUE_IO, job_id=f"mail-{message.id}")
    return message
