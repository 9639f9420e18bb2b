"""Account services: every write about users goes through here."""

from __future__ import annotations

from sqlalchemy import select

from morket.accounts.models import User
from morket.extensions import db


def load_user_from_session_id(session_id: str) -> User | None:
    """flask-login loader: ``<id>:<session_version>``; a stale version logs the session out."""
    user_id, _, version = session_id.partition(":")
    if not user_id.isdigit() or not version.isdigit():
        return None
    user = db.session.get(User, int(user_id))
    if user is None or user.session_version != int(version) or not user.is_active:
        return None
    return user


def get_user_by_email(email: str) -> User | None:
    """Return the user with ``email`` (case-insensitive), or None."""
    return db.session.scalar(select(User).where(User.email == email.strip().lower()))
