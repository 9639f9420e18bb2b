"""Records of CSV imports and exports: who, when, which file, rows in and out, errors, progress."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, Boolean, DateTime, ForeignKey, Index, String, Text, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from morket.core.db import IdMixin, TimestampMixin, WorkspaceScoped
from morket.extensions import db

KINDS = ("import", "export")
# uploaded → queued → running → done | needs_review | failed | cancelled
STATUSES = ("uploaded", "queued", "running", "needs_review", "done", "failed", "cancelled")
FINAL_STATUSES = frozenset({"done", "failed", "cancelled"})


class DataRun(IdMixin, TimestampMixin, WorkspaceScoped, db.Model):
    """One CSV import or export; progress columns are written in their own short transactions."""

    __tablename__ = "data_runs"
    __table_args__ = (Index("ix_data_runs_workspace_created", "workspace_id", "created_at"),)

    kind: Mapped[str] = mapped_column(String(16), nullable=False)
    status: Mapped[str] = mapped_column(String(20), nullable=False, default="uploaded")
    created_by_id: Mapped[int | None] = mapped_column(BigInteger, ForeignKey("users.id", ondelete="SET NULL"))
    table_id: Mapped[int | None] = mapped_column(BigInteger, ForeignKey("tables.id", ondelete="SET NULL"))
    view_id: Mapped[int | None] = mapped_column(BigInteger, ForeignKey("table_views.id", ondelete="SET NULL"))
    file_name: Mapped[str] = mapped_column(String(255), nullable=False, default="")
    size_bytes: Mapped[int] = mapped_column(BigInteger, nullable=False, default=0)
    # Detected format, chosen mapping, mode and dedupe key (see service.start_import).
    settings: Mapped[dict[str, Any]] = mapped_column(
        JSONB, nullable=False, default=dict, server_default=text("'{}'::jsonb")
    )
    bytes_done: Mapped[int] = mapped_column(BigInteger, nullable=False, default=0)
    rows_in: Mapped[int] = mapped_column(BigInteger, nullable=False, default=0)
    rows_out: Mapped[int] = mapped_column(BigInteger, nullable=False, default=0)
    rows_updated: Mapped[int] = mapped_column(BigInteger, nullable=False, default=0)
    rows_skipped: Mapped[int] = mapped_column(BigInteger, nullable=False, default=0)
    error_count: Mapped[int] = mapped_column(BigInteger, nullable=False, default=0)
    message: Mapped[str | None] = mapped_column(Text)
    cancel_requested: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    @property
    def is_final(self) -> bool:
        return self.status in FINAL_STATUSES
