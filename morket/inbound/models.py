"""Inbound webhook sources: a per-table URL that turns posted JSON into rows, and the payloads it refused."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, Boolean, DateTime, ForeignKey, Integer, LargeBinary, String, Text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from morket.core.db import IdMixin, TimestampMixin, WorkspaceScoped
from morket.extensions import db


class InboundSource(IdMixin, TimestampMixin, WorkspaceScoped, db.Model):
    """One inbound URL of a table: its token (in the URL), its secret (encrypted) and its mapping.

    ``mapping`` is ``{"records": <JSON path or "">, "columns": {"<column id>": "<JSON path>"}}``;
    ``recent`` keeps the last receipts (newest first) and ``sample`` the last payload received or
    pasted (capped), which the mapping editor previews.
    """

    __tablename__ = "inbound_sources"

    table_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("tables.id", ondelete="CASCADE"), nullable=False, index=True
    )
    name: Mapped[str] = mapped_column(String(120), nullable=False)
    token: Mapped[str] = mapped_column(String(64), nullable=False, unique=True)
    secret_ciphertext: Mapped[bytes] = mapped_column(LargeBinary, nullable=False)
    key_fingerprint: Mapped[str] = mapped_column(String(16), nullable=False)
    require_signature: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    mapping: Mapped[dict[str, Any]] = mapped_column(JSONB, nullable=False, default=dict)
    upsert_column_id: Mapped[int | None] = mapped_column(BigInteger)
    rate_per_minute: Mapped[int] = mapped_column(Integer, nullable=False, default=600)
    max_body_bytes: Mapped[int] = mapped_column(Integer, nullable=False, default=1_048_576)
    sample: Mapped[Any | None] = mapped_column(JSONB)
    recent: Mapped[list[dict[str, Any]]] = mapped_column(JSONB, nullable=False, default=list)
    requests_accepted: Mapped[int] = mapped_column(BigInteger, nullable=False, default=0)
    rows_inserted: Mapped[int] = mapped_column(BigInteger, nullable=False, default=0)
    rows_updated: Mapped[int] = mapped_column(BigInteger, nullable=False, default=0)
    last_received_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    secret_rotated_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    created_by_id: Mapped[int | None] = mapped_column(BigInteger, ForeignKey("users.id", ondelete="SET NULL"))
    # Not stored: the kept sample's shape as the inbound URL's lookup read it (see service.find_source).
    stored_sample_keys = None
    # Not stored: the source's table with its columns, read by the same lookup (its lock is taken later).
    loaded_table = None


class InboundFailure(IdMixin, TimestampMixin, WorkspaceScoped, db.Model):
    """A payload a source refused after its secret checked out: kept to inspect and replay."""

    __tablename__ = "inbound_failures"

    source_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("inbound_sources.id", ondelete="CASCADE"), nullable=False, index=True
    )
    body: Mapped[bytes] = mapped_column(LargeBinary, nullable=False)
    status: Mapped[int] = mapped_column(Integer, nullable=False)
    code: Mapped[str] = mapped_column(String(40), nullable=False)
    message: Mapped[str] = mapped_column(Text, nullable=False)
    fields: Mapped[dict[str, list[str]]] = mapped_column(JSONB, nullable=False, default=dict)
    replays: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
