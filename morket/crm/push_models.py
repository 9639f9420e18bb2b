"""A table's field mapping to a CRM object: match key, record-id column, column-to-field pairs."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, DateTime, ForeignKey, String, UniqueConstraint, func, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from morket.core.db import IdMixin, TimestampMixin, WorkspaceScoped, utcnow
from morket.extensions import db


class CrmMapping(IdMixin, TimestampMixin, WorkspaceScoped, db.Model):
    """One per table and CRM. ``fields`` is ``[{"column_id": id, "field": name}, …]``.

    The key column's value is also sent as the key field, so it is not repeated in ``fields``;
    the record-id column receives the CRM's record id after a push.
    """

    __tablename__ = "crm_mappings"
    __table_args__ = (UniqueConstraint("table_id", "provider"),)

    table_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("tables.id", ondelete="CASCADE"), nullable=False)
    provider: Mapped[str] = mapped_column(String(32), nullable=False)
    object: Mapped[str] = mapped_column(String(64), nullable=False)
    key_field: Mapped[str] = mapped_column(String(120), nullable=False)
    key_column_id: Mapped[int | None] = mapped_column(BigInteger, ForeignKey("table_columns.id", ondelete="SET NULL"))
    record_id_column_id: Mapped[int | None] = mapped_column(
        BigInteger, ForeignKey("table_columns.id", ondelete="SET NULL")
    )
    fields: Mapped[list[dict[str, Any]]] = mapped_column(
        JSONB, nullable=False, default=list, server_default=text("'[]'::jsonb")
    )
    updated_by_id: Mapped[int | None] = mapped_column(BigInteger, ForeignKey("users.id", ondelete="SET NULL"))
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), default=utcnow, onupdate=utcnow, nullable=False
    )
