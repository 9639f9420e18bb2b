"""Users, browser sessions, single-use tokens, failed logins, API refresh tokens."""

from __future__ import annotations

from datetime import datetime

from flask_login import UserMixin
from sqlalchemy import BigInteger, Boolean, DateTime, ForeignKey, Index, String, Text, func, text
from sqlalchemy.orm import Mapped, mapped_column

from morket.core.db import IdMixin, TimestampMixin
from morket.extensions import db


class User(IdMixin, TimestampMixin, UserMixin, db.Model):
    __tablename__ = "users"

    email: Mapped[str] = mapped_column(String(320), unique=True, nullable=False)
    name: Mapped[str] = mapped_column(String(120), nullable=False, default="")
    password_hash: Mapped[str] = mapped_column(Text, nullable=False)
    email_verified_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    disabled_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    is_platform_admin: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    last_login_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    # The browser session this object was logged in or loaded through (``<user id>:<session key>``),
    # set by ``accounts.service.start_session`` and the user loader; flask-login stores get_id().
    browser_session_id = None

    def get_id(self) -> str:
        return self.browser_session_id or str(self.id)

    @property
    def is_active(self) -> bool:  # flask-login refuses disabled users
        return self.disabled_at is None

    @property
    def is_verified(self) -> bool:
        return self.email_verified_at is not None


class UserSession(IdMixin, TimestampMixin, db.Model):
    """One logged-in browser: the cookie names its random key, stored here hashed; ending it refuses the cookie."""

    __tablename__ = "user_sessions"
    __table_args__ = (Index("ix_user_sessions_user_live", "user_id", postgresql_where=text("ended_at IS NULL")),)

    user_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("users.id", ondelete="CASCADE"), nullable=False)
    key_hash: Mapped[str] = mapped_column(String(64), unique=True, nullable=False)
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    ended_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    ip: Mapped[str] = mapped_column(String(64), nullable=False, default="")
    user_agent: Mapped[str] = mapped_column(String(255), nullable=False, default="")


class UserToken(IdMixin, TimestampMixin, db.Model):
    """A single-use emailed token (verify email, reset password), stored hashed."""

    __tablename__ = "user_tokens"

    user_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("users.id", ondelete="CASCADE"), nullable=False, index=True
    )
    purpose: Mapped[str] = mapped_column(String(32), nullable=False)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True, nullable=False)
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    used_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class LoginFailure(IdMixin, db.Model):
    """One failed password attempt; the lockout window counts these across processes."""

    __tablename__ = "login_failures"
    __table_args__ = (Index("ix_login_failures_user_at", "user_id", "at"),)

    user_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("users.id", ondelete="CASCADE"), nullable=False)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False, server_default=func.now())
    ip: Mapped[str] = mapped_column(String(64), nullable=False, default="")


class RefreshToken(IdMixin, TimestampMixin, db.Model):
    """An API refresh token; rotated on use, its family revoked on replay."""

    __tablename__ = "refresh_tokens"
    __table_args__ = (
        Index("ix_refresh_tokens_user_live", "user_id", "used_at", "revoked_at"),
        # Every API request with an access token asks whether its family was revoked: a tiny index.
        Index("ix_refresh_tokens_revoked_family", "family_id", postgresql_where=text("revoked_at IS NOT NULL")),
    )

    user_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("users.id", ondelete="CASCADE"), nullable=False)
    workspace_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("workspaces.id", ondelete="CASCADE"), nullable=False, index=True
    )
    family_id: Mapped[str] = mapped_column(String(36), nullable=False, index=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True, nullable=False)
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    family_expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    used_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
