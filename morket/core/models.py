"""Outbox, mail log and audit trail: rows that every domain writes through core helpers."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, DateTime, ForeignKey, Index, Integer, String, Text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from morket.core.db import IdMixin, TimestampMixin
from morket.extensions import db


class OutboxMessage(IdMixin, TimestampMixin, db.Model):
    """A job (or later a domain event) written in the caller's transaction, relayed after commit."""

    __tablename__ = "outbox"
    __table_args__ = (Index("ix_outbox_pending", "id", postgresql_where="relayed_at IS NULL"),)

    kind: Mapped[str] = mapped_column(String(32), nullable=False, default="job")
    queue: Mapped[str] = mapped_column(String(32), nullable=False)
    func: Mapped[str] = mapped_column(String(200), nullable=False)
    job_id: Mapped[str] = mapped_column(String(200), nullable=False)
    args: Mapped[list[Any]] = mapped_column(JSONB, nullable=False, default=list)
    relayed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    attempts: Mapped[int] = mapped_column(Integer, nullable=False, default=0)


class MailMessage(IdMixin, TimestampMixin, db.Model):
    """Every email Morket sends; without SMTP configured this is the dev mailbox."""

    __tablename__ = "mail_messages"

    to_address: Mapped[str] = mapped_column(String(320), nullable=False, index=True)
    subject: Mapped[str] = mapped_column(String(300), nullable=False)
    text_body: Mapped[str] = mapped_column(Text, nullable=False)
    html_body: Mapped[str] = mapped_column(Text, nullable=False, default="")
    transport: Mapped[str | None] = mapped_column(String(16))
    sent_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    error: Mapped[str | None] = mapped_column(Text)


class AuditEvent(IdMixin, TimestampMixin, db.Model):
    """Who did what to which object; workspace_id is null for platform-level events."""

    __tablename__ = "audit_events"

    workspace_id: Mapped[int | None] = mapped_column(
        BigInteger, ForeignKey("workspaces.id", ondelete="CASCADE"), index=True
    )
    actor_id: Mapped[int | None] = mapped_column(BigInteger, ForeignKey("users.id", ondelete="SET NULL"))
    action: Mapped[str] = mapped_column(String(64), nullable=False)
    target: Mapped[str] = mapped_column(String(200), nullable=False, default="")
    data: Mapped[dict[str, Any]] = mapped_column(JSONB, nullable=False, default=dict)
