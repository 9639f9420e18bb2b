"""The row-run engine's tables: a run over rows of a table, and one work item per row.

The tables keep the names they were created with (``enrichment_runs``, ``enrichment_run_rows``):
enrichment was the first kind of run, and every run so far is one. A run's state lives here
(PostgreSQL), never only in Redis: a worker killed mid-run, or a Redis outage, loses no row,
because a row is only final once its run row says so, and a lease that expires is handed out
again by the reconciler.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, DateTime, ForeignKey, Index, Integer, PrimaryKeyConstraint, String, Text, func, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from morket.core.db import IdMixin, TimestampMixin, WorkspaceScoped, utcnow
from morket.extensions import db

RUN_SCOPES: tuple[str, ...] = ("all", "empty", "selected", "auto")
# queued -> running -> completed | cancelled | failed; running <-> paused (Redis away, breaker open)
RUN_STATUSES: tuple[str, ...] = ("queued", "running", "paused", "completed", "cancelled", "failed")
FINAL_RUN_STATUSES = frozenset({"completed", "cancelled", "failed"})
# pending -> leased -> done | pending (retry later) | awaiting_callback -> done; any non-final -> cancelled
RUN_ROW_STATUSES: tuple[str, ...] = ("pending", "leased", "awaiting_callback", "done", "cancelled")
ACTIVE_RUN_STATUSES = ("queued", "running")
OPEN_ROW_STATUSES = ("pending", "leased", "awaiting_callback")


class Run(IdMixin, TimestampMixin, WorkspaceScoped, db.Model):
    """One run over a set of rows of a table (an enrichment column's, or a CRM push), with its progress counters."""

    __tablename__ = "enrichment_runs"
    __table_args__ = (
        Index("ix_enrichment_runs_workspace_created", "workspace_id", "created_at"),
        Index("ix_enrichment_runs_column_id", "column_id"),
        # The reconciler looks only at runs that are not over.
        Index("ix_enrichment_runs_active", "status", postgresql_where=text("status IN ('queued','running','paused')")),
    )

    table_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("tables.id", ondelete="CASCADE"), nullable=False)
    column_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("table_columns.id", ondelete="CASCADE"), nullable=False
    )
    # The executor that runs it (``executor.register_executor``): enrichment or crm_push.
    kind: Mapped[str] = mapped_column(String(16), nullable=False, default="enrichment", server_default="enrichment")
    scope: Mapped[str] = mapped_column(String(16), nullable=False, default="all")
    status: Mapped[str] = mapped_column(String(16), nullable=False, default="queued")
    pause_reason: Mapped[str | None] = mapped_column(Text)
    # The column's configuration when the run started, so an edit mid-run does not change it.
    config: Mapped[dict[str, Any]] = mapped_column(
        JSONB, nullable=False, default=dict, server_default=text("'{}'::jsonb")
    )
    total: Mapped[int] = mapped_column(BigInteger, nullable=False, default=0)
    done: Mapped[int] = mapped_column(BigInteger, nullable=False, default=0)
    succeeded: Mapped[int] = mapped_column(BigInteger, nullable=False, default=0)
    no_data: Mapped[int] = mapped_column(BigInteger, nullable=False, default=0)
    failed: Mapped[int] = mapped_column(BigInteger, nullable=False, default=0)
    skipped: Mapped[int] = mapped_column(BigInteger, nullable=False, default=0)
    cancelled: Mapped[int] = mapped_column(BigInteger, nullable=False, default=0)
    credits_used: Mapped[int] = mapped_column(BigInteger, nullable=False, default=0)
    estimate_credits: Mapped[int] = mapped_column(BigInteger, nullable=False, default=0)
    created_by_id: Mapped[int | None] = mapped_column(BigInteger, ForeignKey("users.id", ondelete="SET NULL"))
    started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), default=utcnow, onupdate=utcnow, nullable=False
    )

    @property
    def finished(self) -> bool:
        return self.status in FINAL_RUN_STATUSES

    @property
    def remaining(self) -> int:
        return max(self.total - self.done, 0)


class RunRow(WorkspaceScoped, db.Model):
    """The work item of one table row in one run: its lease, retries, callback and final cell state."""

    __tablename__ = "enrichment_run_rows"
    __table_args__ = (
        PrimaryKeyConstraint("run_id", "row_id", name="pk_enrichment_run_rows"),
        # Claiming: the next pending rows of a run that are due.
        Index(
            "ix_enrichment_run_rows_claim",
            "run_id",
            "next_attempt_at",
            "row_id",
            postgresql_where=text("status = 'pending'"),
        ),
        # The reconciler: leases and callbacks past their deadline.
        Index(
            "ix_enrichment_run_rows_lease",
            "lease_expires_at",
            postgresql_where=text("status IN ('leased','awaiting_callback')"),
        ),
    )

    run_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("enrichment_runs.id", ondelete="CASCADE"))
    row_id: Mapped[int] = mapped_column(BigInteger)
    status: Mapped[str] = mapped_column(String(20), nullable=False, default="pending")
    # The final cell state (one of config.CELL_STATES) once status is done or cancelled.
    state: Mapped[str | None] = mapped_column(String(20))
    # The waterfall step to try next (an asynchronous step resumes here after its callback).
    step_index: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    attempts: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), nullable=False, server_default=func.now(), default=utcnow
    )
    lease_owner: Mapped[str | None] = mapped_column(String(64))
    # For awaiting_callback rows this is the callback deadline.
    lease_expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    callback_id: Mapped[str | None] = mapped_column(String(64), unique=True)
    provider: Mapped[str | None] = mapped_column(String(40))
    message: Mapped[str | None] = mapped_column(Text)
    # An asynchronous provider's answer, kept by the callback until a worker continues the row.
    result: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
