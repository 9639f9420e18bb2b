"""CRM pulls: where a table's rows come from in a CRM (a pull source), and each run of it (a pull)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, Boolean, DateTime, ForeignKey, Integer, String, Text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from morket.core.db import IdMixin, TimestampMixin, WorkspaceScoped
from morket.extensions import db


class CrmPullSource(IdMixin, TimestampMixin, WorkspaceScoped, db.Model):
    """What a table pulls from a CRM: a HubSpot list or object, or a Salesforce query built from parts.

    ``spec`` holds the source's parts (``object``, ``list_id``, ``fields``, ``where`` as
    [field, operator, value] triples; never SOQL text). ``columns`` maps CRM field names to the
    table's column ids; ``key_column_id`` is the column rows are upserted by (the record id
    column unless a mapped key was chosen). ``high_water`` is the newest last-modified time the
    last finished pull saw (ISO 8601): the next pull asks only for records modified since.
    """

    __tablename__ = "crm_pull_sources"

    table_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("tables.id", ondelete="CASCADE"), index=True)
    provider: Mapped[str] = mapped_column(String(32), nullable=False)
    kind: Mapped[str] = mapped_column(String(16), nullable=False)  # list | object | query
    label: Mapped[str] = mapped_column(String(200), nullable=False)
    spec: Mapped[dict[str, Any]] = mapped_column(JSONB, nullable=False, default=dict)
    columns: Mapped[dict[str, Any]] = mapped_column(JSONB, nullable=False, default=dict)
    key_column_id: Mapped[int | None] = mapped_column(BigInteger)
    #: A row whose record was deleted in the CRM (archived, or gone from the list): keep | remove.
    on_delete: Mapped[str] = mapped_column(String(8), nullable=False, default="keep", server_default="keep")
    high_water: Mapped[str | None] = mapped_column(String(40))
    last_run_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    last_status: Mapped[str | None] = mapped_column(String(16))
    created_by_id: Mapped[int | None] = mapped_column(BigInteger, ForeignKey("users.id", ondelete="SET NULL"))


class CrmPull(IdMixin, TimestampMixin, WorkspaceScoped, db.Model):
    """One run of a pull source: its state, counts and where it got to (``cursor``, to resume)."""

    __tablename__ = "crm_pulls"

    source_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("crm_pull_sources.id", ondelete="CASCADE"), index=True
    )
    status: Mapped[str] = mapped_column(String(16), nullable=False, default="queued")
    full: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    since: Mapped[str | None] = mapped_column(String(40))
    rows_read: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    rows_written: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    inserted: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    updated: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    removed: Mapped[int] = mapped_column(Integer, nullable=False, default=0, server_default="0")
    cursor: Mapped[dict[str, Any]] = mapped_column(JSONB, nullable=False, default=dict)
    seen_high: Mapped[str | None] = mapped_column(String(40))
    cancel_requested: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    error: Mapped[str | None] = mapped_column(Text)
    started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    created_by_id: Mapped[int | None] = mapped_column(BigInteger, ForeignKey("users.id", ondelete="SET NULL"))
