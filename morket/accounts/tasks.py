"""Accounts' periodic clean-up jobs, run by the scheduler (see workers/schedule.py)."""

from __future__ import annotations

from sqlalchemy import delete, or_

from morket.accounts.models import RefreshToken, UserSession, UserToken
from morket.core.db import utcnow
from morket.extensions import db


def delete_expired_user_tokens() -> int:
    """Delete emailed tokens (verification, password reset) past their expiry; return how many."""
    result = db.session.execute(
        delete(UserToken).where(UserToken.expires_at < utcnow()),
        execution_options={"synchronize_session": False},
    )
    return result.rowcount or 0


def delete_expired_refresh_tokens() -> int:
    """Delete refresh tokens past their expiry; return how many.

    A used token is kept until its whole family expires: presenting it again is how a stolen
    token is detected (the family gets revoked), and that check must outlive the token itself.
    """
    now = utcnow()
    result = db.session.execute(
        delete(RefreshToken).where(
            RefreshToken.expires_at < now,
            or_(RefreshToken.used_at.is_(None), RefreshToken.family_expires_at < now),
        ),
        execution_options={"synchronize_session": False},
    )
    return result.rowcount or 0


def delete_expired_sessions() -> int:
    """Delete browser sessions past their expiry; return how many.

    An ended session is kept until then: its row is what refuses a saved copy of its cookie, and
    the cookie is accepted (its signature carries its age) until the same moment.
    """
    result = db.session.execute(
        delete(UserSession).where(UserSession.expires_at < utcnow()),
        execution_options={"synchronize_session": False},
    )
    return result.rowcount or 0
