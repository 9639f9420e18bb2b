"""Outbound webhooks: endpoints a workspace subscribes, the events it emits, deliveries and attempts."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    UniqueConstraint,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlalchemy.orm import Mapped, mapped_column

from morket.core.db import IdMixin, TimestampMixin, WorkspaceScoped, utcnow
from morket.extensions import db


class WebhookEndpoint(IdMixin, TimestampMixin, WorkspaceScoped, db.Model):
    """A URL the workspace's events are POSTed to, signed with its secret (ciphertext only here).

    During a rotation's overlap ``previous_ciphertext`` still signs, until ``previous_expires_at``.
    ``failing_since`` is when the oldest delivery still failing first failed; the endpoint is
    disabled once that has lasted the whole retry schedule.
    """

    __tablename__ = "webhook_endpoints"

    uid: Mapped[str] = mapped_column(String(32), nullable=False, unique=True)
    url: Mapped[str] = mapped_column(String(2048), nullable=False)
    description: Mapped[str] = mapped_column(String(200), nullable=False, default="")
    event_types: Mapped[list[str]] = mapped_column(ARRAY(String(40)), nullable=False)
    enabled: Mapped[bool] = mapped_column(Boolean, nullable=False, default=True)
    disabled_reason: Mapped[str | None] = mapped_column(String(300))
    secret_ciphertext: Mapped[bytes] = mapped_column(LargeBinary, nullable=False)
    previous_ciphertext: Mapped[bytes | None] = mapped_column(LargeBinary)
    previous_expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    key_fingerprint: Mapped[str] = mapped_column(String(16), nullable=False)
    failing_since: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    created_by_id: Mapped[int | None] = mapped_column(BigInteger, ForeignKey("users.id", ondelete="SET NULL"))


class WebhookEvent(IdMixin, WorkspaceScoped, db.Model):
    """One event as sent: its public id (``webhook-id``), type and JSON body, written with the change."""

    __tablename__ = "webhook_events"

    uid: Mapped[str] = mapped_column(String(40), nullable=False, unique=True)
    type: Mapped[str] = mapped_column(String(40), nullable=False)
    payload: Mapped[dict[str, Any]] = mapped_column(JSONB, nullable=False)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False, default=utcnow)


class WebhookDelivery(IdMixin, WorkspaceScoped, db.Model):
    """One event for one endpoint: pending until a 2xx (succeeded) or the schedule runs out (failed)."""

    __tablename__ = "webhook_deliveries"
    __table_args__ = (
        UniqueConstraint("endpoint_id", "event_id"),
        Index("ix_webhook_deliveries_endpoint_status_id", "endpoint_id", "status", "id"),
    )

    endpoint_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("webhook_endpoints.id", ondelete="CASCADE"), nullable=False
    )
    event_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("webhook_events.id", ondelete="CASCADE"), nullable=False, index=True
    )
    status: Mapped[str] = mapped_column(String(16), nullable=False, default="pending")
    attempts: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False, default=utcnow)
    first_failed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    last_status_code: Mapped[int | None] = mapped_column(Integer)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False, default=utcnow)


class WebhookAttempt(IdMixin, WorkspaceScoped, db.Model):
    """One HTTP attempt of a delivery: status, latency and a short, sanitised excerpt of the answer."""

    __tablename__ = "webhook_attempts"

    delivery_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("webhook_deliveries.id", ondelete="CASCADE"), nullable=False, index=True
    )
    attempted_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False, default=utcnow)
    ok: Mapped[bool] = mapped_column(Boolean, nullable=False)
    status_code: Mapped[int | None] = mapped_column(Integer)
    latency_ms: Mapped[int] = mapped_column(Integer, nullable=False)
    response_excerpt: Mapped[str] = mapped_column(String(500), nullable=False, default="")
    error: Mapped[str | None] = mapped_column(String(300))
