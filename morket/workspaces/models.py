"""Workspaces (tenants), memberships, invitations, workspace API keys."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, DateTime, ForeignKey, Index, String, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from morket.core.db import IdMixin, TimestampMixin, WorkspaceScoped, utcnow
from morket.extensions import db


class Workspace(IdMixin, TimestampMixin, db.Model):
    __tablename__ = "workspaces"

    slug: Mapped[str] = mapped_column(String(64), unique=True, nullable=False)
    name: Mapped[str] = mapped_column(String(120), nullable=False)


class Membership(IdMixin, TimestampMixin, WorkspaceScoped, db.Model):
    __tablename__ = "memberships"
    __table_args__ = (UniqueConstraint("workspace_id", "user_id"),)

    user_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("users.id", ondelete="CASCADE"), nullable=False, index=True
    )
    role: Mapped[str] = mapped_column(String(32), nullable=False)

    user = relationship("User", lazy="joined")
    workspace = relationship("Workspace", lazy="joined")


class Invitation(IdMixin, TimestampMixin, WorkspaceScoped, db.Model):
    __tablename__ = "invitations"
    # Every signed-in page shows the invitations waiting for the user's address: a small index.
    __table_args__ = (
        Index(
            "ix_invitations_pending_email", "email", postgresql_where=text("accepted_at IS NULL AND revoked_at IS NULL")
        ),
    )

    email: Mapped[str] = mapped_column(String(320), nullable=False)
    role: Mapped[str] = mapped_column(String(32), nullable=False)
    invited_by_id: Mapped[int | None] = mapped_column(BigInteger, ForeignKey("users.id", ondelete="SET NULL"))
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    accepted_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    @property
    def is_expired(self) -> bool:
        return self.expires_at <= utcnow()


class ApiKey(IdMixin, TimestampMixin, WorkspaceScoped, db.Model):
    """A server-to-server key: shown once, stored as a SHA-256 hash, scoped to a role."""

    __tablename__ = "api_keys"

    name: Mapped[str] = mapped_column(String(120), nullable=False)
    prefix: Mapped[str] = mapped_column(String(16), nullable=False)
    key_hash: Mapped[str] = mapped_column(String(64), unique=True, nullable=False)
    role: Mapped[str] = mapped_column(String(32), nullable=False)
    created_by_id: Mapped[int | None] = mapped_column(BigInteger, ForeignKey("users.id", ondelete="SET NULL"))
    last_used_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
