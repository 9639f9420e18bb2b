"""The dev mailbox: every recorded email, readable in the browser outside production."""

from __future__ import annotations

import re

from flask import abort, current_app, render_template
from markupsafe import Markup, escape
from sqlalchemy import select

from morket.core.models import MailMessage
from morket.extensions import db
from morket.system import bp

MAILBOX_PAGE_SIZE = 100
_URL = re.compile(r"https?://[^\s<>\"']+")
_TRAILING = ".,;:!?)]}"


def _require_dev() -> None:
    if current_app.config["ENV_NAME"] == "production":
        abort(404)


def linkify(text: str) -> Markup:
    """Escape ``text`` and turn its http(s) URLs into links; nothing else becomes markup."""
    parts: list[Markup] = []
    pos = 0
    for match in _URL.finditer(text):
        url = match.group(0).rstrip(_TRAILING)
        parts.append(escape(text[pos : match.start()]))
        # Markup.format escapes the URL for both the attribute and the link text.
        parts.append(Markup('<a href="{0}" rel="noopener noreferrer">{0}</a>').format(url))
        pos = match.start() + len(url)
    parts.append(escape(text[pos:]))
    return Markup("").join(parts)


@bp.get("/dev/mailbox")
def mailbox():
    _require_dev()
    messages = db.session.scalars(
        select(MailMessage).order_by(MailMessage.created_at.desc(), MailMessage.id.desc()).limit(MAILBOX_PAGE_SIZE)
    ).all()
    return render_template("system/mailbox.html", messages=messages, page_size=MAILBOX_PAGE_SIZE)


@bp.get("/dev/mailbox/<int:message_id>")
def mailbox_message(message_id: int):
    _require_dev()
    message = db.session.get(MailMessage, message_id)
    if message is None:
        abort(404)
    return render_template("system/mailbox_message.html", message=message, body=linkify(message.text_body))
