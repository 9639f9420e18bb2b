"""Enrichment's own tables: every provider attempt and the per-workspace cache.

Its runs and the rows they lease are the row-run engine's tables (``morket.runs.models``);
``EnrichmentRun`` and ``EnrichmentRunRow`` are their names here.
"""

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
    PrimaryKeyConstraint,
    String,
    Text,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from morket.core.db import IdMixin, TimestampMixin, WorkspaceScoped, utcnow
from morket.extensions import db
from morket.runs.models import Run, RunRow

KEY_SOURCES: tuple[str, ...] = ("platform", "own", "none")
EnrichmentRun = Run
EnrichmentRunRow = RunRow


class EnrichmentAttempt(IdMixin, TimestampMixin, WorkspaceScoped, db.Model):
    """One provider call (or cache hit) for one cell: who answered, how fast, what it cost."""

    __tablename__ = "enrichment_attempts"
    __table_args__ = (
        Index("ix_enrichment_attempts_run_row", "run_id", "row_id"),
        Index("ix_enrichment_attempts_column_row", "column_id", "row_id"),
    )

    run_id: Mapped[int | None] = mapped_column(BigInteger, ForeignKey("enrichment_runs.id", ondelete="CASCADE"))
    row_id: Mapped[int] = mapped_column(BigInteger, nullable=False)
    column_id: Mapped[int | None] = mapped_column(BigInteger, ForeignKey("table_columns.id", ondelete="CASCADE"))
    provider: Mapped[str] = mapped_column(String(40), nullable=False)
    operation: Mapped[str] = mapped_column(String(80), nullable=False)
    step_index: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    # One of providers.base outcomes (success, no_data, ...), plus "skipped_open_circuit".
    outcome: Mapped[str] = mapped_column(String(32), nullable=False)
    http_status: Mapped[int | None] = mapped_column(Integer)
    latency_ms: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    cost: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    key_source: Mapped[str] = mapped_column(String(16), nullable=False, default="platform")
    cached: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    message: Mapped[str | None] = mapped_column(Text)


class EnrichmentCacheEntry(db.Model):
    """A provider's final answer (hit or not found) for one input, reused within the workspace."""

    __tablename__ = "enrichment_cache"
    __table_args__ = (
        PrimaryKeyConstraint("workspace_id", "operation", "input_hash", name="pk_enrichment_cache"),
        Index("ix_enrichment_cache_expires_at", "expires_at"),
    )

    workspace_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("workspaces.id", ondelete="CASCADE"))
    operation: Mapped[str] = mapped_column(String(80))
    input_hash: Mapped[str] = mapped_column(String(64))
    outcome: Mapped[str] = mapped_column(String(32), nullable=False)
    values: Mapped[dict[str, Any]] = mapped_column(
        JSONB, nullable=False, default=dict, server_default=text("'{}'::jsonb")
    )
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    created_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), default=utcnow, nullable=False
    )
