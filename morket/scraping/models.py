"""Scrape requests: what was asked (URL, extractor), by whom, and what came back."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, DateTime, ForeignKey, Index, Integer, LargeBinary, String, Text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, deferred, mapped_column

from morket.core.db import IdMixin, TimestampMixin, WorkspaceScoped
from morket.extensions import db

# queued → running → done | failed
STATUSES = ("queued", "running", "done", "failed")
FINAL_STATUSES = frozenset({"done", "failed"})
SOURCES = ("page", "api", "enrichment")


class ScrapeRequest(IdMixin, TimestampMixin, WorkspaceScoped, db.Model):
    """One URL read by a scrape worker with one extractor; the result is the extractor's JSON."""

    __tablename__ = "scrape_requests"
    __table_args__ = (Index("ix_scrape_requests_workspace_created", "workspace_id", "created_at"),)

    created_by_id: Mapped[int | None] = mapped_column(BigInteger, ForeignKey("users.id", ondelete="SET NULL"))
    source: Mapped[str] = mapped_column(String(16), nullable=False, default="page")
    url: Mapped[str] = mapped_column(Text, nullable=False)
    extractor: Mapped[str] = mapped_column(String(40), nullable=False)
    status: Mapped[str] = mapped_column(String(16), nullable=False, default="queued")
    final_url: Mapped[str | None] = mapped_column(Text)
    http_status: Mapped[int | None] = mapped_column(Integer)
    result: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    error_kind: Mapped[str | None] = mapped_column(String(20))
    message: Mapped[str | None] = mapped_column(Text)
    attempts: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    duration_ms: Mapped[int | None] = mapped_column(Integer)
    # Screenshots are only read by their own route, so they are not loaded with the row.
    screenshot: Mapped[bytes | None] = deferred(mapped_column(LargeBinary))
    started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    @property
    def is_final(self) -> bool:
        return self.status in FINAL_STATUSES
