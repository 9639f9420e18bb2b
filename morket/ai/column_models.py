"""AI columns' own tables: a workspace's monthly AI budget, the "try on 5 rows" dry runs, research results.

An AI column's setup lives in its ``Column.config`` and its runs are row-run engine runs
(``Run.kind = "ai"``, with the run's budget in the run's config); only what has no other home is here.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    DateTime,
    ForeignKey,
    Index,
    String,
    Text,
    UniqueConstraint,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from morket.core.db import IdMixin, TimestampMixin, WorkspaceScoped, utcnow
from morket.extensions import db


class AiWorkspaceBudget(db.Model):
    """The most a workspace's AI columns may spend in a calendar month (None: no limit)."""

    __tablename__ = "ai_workspace_budgets"
    __table_args__ = (
        CheckConstraint("monthly_credits IS NULL OR monthly_credits >= 0", name="monthly_credits_not_negative"),
    )

    workspace_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("workspaces.id", ondelete="CASCADE"), primary_key=True
    )
    monthly_credits: Mapped[int | None] = mapped_column(BigInteger)
    updated_by_id: Mapped[int | None] = mapped_column(BigInteger, ForeignKey("users.id", ondelete="SET NULL"))
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), default=utcnow, onupdate=utcnow, nullable=False
    )


class AiDryRun(IdMixin, TimestampMixin, WorkspaceScoped, db.Model):
    """One "try on 5 rows": the prompts sent, the answers, their cost and the estimate for the rest."""

    __tablename__ = "ai_dry_runs"
    __table_args__ = (Index("ix_ai_dry_runs_column_created", "column_id", "created_at"),)

    table_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("tables.id", ondelete="CASCADE"), nullable=False)
    column_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("table_columns.id", ondelete="CASCADE"), nullable=False
    )
    created_by_id: Mapped[int | None] = mapped_column(BigInteger, ForeignKey("users.id", ondelete="SET NULL"))
    config: Mapped[dict[str, Any]] = mapped_column(
        JSONB, nullable=False, default=dict, server_default=text("'{}'::jsonb")
    )
    samples: Mapped[list[dict[str, Any]]] = mapped_column(
        JSONB, nullable=False, default=list, server_default=text("'[]'::jsonb")
    )
    credits: Mapped[int] = mapped_column(BigInteger, nullable=False, default=0)
    input_tokens: Mapped[int] = mapped_column(BigInteger, nullable=False, default=0)
    output_tokens: Mapped[int] = mapped_column(BigInteger, nullable=False, default=0)
    rows_total: Mapped[int] = mapped_column(BigInteger, nullable=False, default=0)
    estimate_credits: Mapped[int] = mapped_column(BigInteger, nullable=False, default=0)


class AiResearchResult(IdMixin, TimestampMixin, WorkspaceScoped, db.Model):
    """A research column's latest result for one row: the answer, its sources and every page visited.

    ``record`` is ``research.Research.record()``: status, answer, sources ({url, title, quote}),
    rejected sources, pages ({url, final_url, status, outcome, reason}), searches, steps, tokens.
    """

    __tablename__ = "ai_research_results"
    __table_args__ = (UniqueConstraint("column_id", "row_id"),)

    table_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("tables.id", ondelete="CASCADE"), nullable=False)
    column_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("table_columns.id", ondelete="CASCADE"), nullable=False
    )
    row_id: Mapped[int] = mapped_column(BigInteger, nullable=False)
    run_id: Mapped[int | None] = mapped_column(BigInteger, ForeignKey("enrichment_runs.id", ondelete="SET NULL"))
    status: Mapped[str] = mapped_column(String(16), nullable=False)
    answer: Mapped[str | None] = mapped_column(Text)
    record: Mapped[dict[str, Any]] = mapped_column(
        JSONB, nullable=False, default=dict, server_default=text("'{}'::jsonb")
    )
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), default=utcnow, onupdate=utcnow, nullable=False
    )
