"""Table, column and view metadata; the rows themselves live in the ``ut`` schema (see storage)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, Boolean, DateTime, ForeignKey, Index, Integer, String, text
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlalchemy.orm import Mapped, mapped_column, relationship

from morket.core.db import IdMixin, TimestampMixin, WorkspaceScoped
from morket.extensions import db

USER_SCHEMA = "ut"

# Value types a user picks for a column; the enrichment and AI kinds are filled by later features
# and keep their per-cell progress in the row's ``cell_state``.
COLUMN_TYPES: tuple[str, ...] = (
    "text",
    "long_text",
    "number",
    "currency",
    "percent",
    "date",
    "datetime",
    "checkbox",
    "single_select",
    "multi_select",
    "email",
    "url",
    "phone",
    "domain",
    "json",
    "formula",
    "lookup",
    "enrichment",
    "ai",
)


class Table(IdMixin, TimestampMixin, WorkspaceScoped, db.Model):
    """A user table; its rows are stored in ``ut.<storage_name>``."""

    __tablename__ = "tables"
    __table_args__ = (Index("ix_tables_workspace_folder", "workspace_id", "folder"),)

    name: Mapped[str] = mapped_column(String(120), nullable=False)
    folder: Mapped[str | None] = mapped_column(String(120))
    storage_name: Mapped[str] = mapped_column(String(63), nullable=False, default="")
    # Bumped on every change of the physical layout; keys the cached Core Table objects.
    version: Mapped[int] = mapped_column(Integer, nullable=False, default=1)
    row_count: Mapped[int] = mapped_column(BigInteger, nullable=False, default=0)
    # Row positions: the row at position N has pos = pos_base + N + (gaps at or below that pos).
    # Deleted positions are kept in this short sorted list until a compaction renumbers the rows.
    pos_base: Mapped[int] = mapped_column(BigInteger, nullable=False, default=0, server_default=text("0"))
    pos_gaps: Mapped[list[int]] = mapped_column(
        ARRAY(BigInteger), nullable=False, default=list, server_default=text("'{}'::bigint[]")
    )
    created_by_id: Mapped[int | None] = mapped_column(BigInteger, ForeignKey("users.id", ondelete="SET NULL"))
    # True while a lookup column of some table reads this one (``tables.lookups``): its writes recompute them.
    lookup_source: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False, server_default=text("false"))

    columns: Mapped[list[Column]] = relationship(
        "Column",
        back_populates="table",
        order_by="Column.position",
        cascade="all, delete-orphan",
        passive_deletes=True,
    )

    @property
    def live_columns(self) -> list[Column]:
        """Columns that are not deleted, in display order."""
        return [c for c in self.columns if c.deleted_at is None]


class Column(IdMixin, TimestampMixin, WorkspaceScoped, db.Model):
    """A typed column of a table; its cells are ``c_<id>`` in the physical table."""

    __tablename__ = "table_columns"
    __table_args__ = (
        Index("ix_table_columns_table_position", "table_id", "position"),
        # The lookups that read a table (``tables.lookups.readers_of``).
        Index(
            "ix_table_columns_lookup_source",
            text("((config ->> 'source_table_id')::bigint)"),
            postgresql_where=text("type = 'lookup'"),
        ),
    )

    table_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("tables.id", ondelete="CASCADE"), nullable=False)
    name: Mapped[str] = mapped_column(String(120), nullable=False)
    type: Mapped[str] = mapped_column(String(32), nullable=False)
    config: Mapped[dict[str, Any]] = mapped_column(
        JSONB, nullable=False, default=dict, server_default=text("'{}'::jsonb")
    )
    position: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    hidden: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    width: Mapped[int] = mapped_column(Integer, nullable=False, default=180)
    # Deleted columns keep their physical column so that undo can restore them.
    deleted_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    table: Mapped[Table] = relationship("Table", back_populates="columns")

    @property
    def storage_name(self) -> str:
        return f"c_{self.id}"


class View(IdMixin, TimestampMixin, WorkspaceScoped, db.Model):
    """A saved way of looking at a table: sort, filters, hidden and frozen columns, widths."""

    __tablename__ = "table_views"
    __table_args__ = (Index("ix_table_views_table_id", "table_id"),)

    table_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("tables.id", ondelete="CASCADE"), nullable=False)
    name: Mapped[str] = mapped_column(String(120), nullable=False)
    sort: Mapped[list[dict[str, Any]]] = mapped_column(
        JSONB, nullable=False, default=list, server_default=text("'[]'::jsonb")
    )
    filters: Mapped[dict[str, Any]] = mapped_column(
        JSONB, nullable=False, default=dict, server_default=text("'{}'::jsonb")
    )
    hidden_column_ids: Mapped[list[int]] = mapped_column(
        JSONB, nullable=False, default=list, server_default=text("'[]'::jsonb")
    )
    frozen_count: Mapped[int] = mapped_column(Integer, nullable=False, default=1)
    widths: Mapped[dict[str, int]] = mapped_column(
        JSONB, nullable=False, default=dict, server_default=text("'{}'::jsonb")
    )
    # True when the materialised order (ut.o_<table>_<view>) must be rebuilt before the next read.
    order_stale: Mapped[bool] = mapped_column(Boolean, nullable=False, default=True)
    # Rows in the built order. Order tables are UNLOGGED (derived data, built fast); a crash empties
    # them, and an empty order where this says otherwise is rebuilt.
    order_size: Mapped[int | None] = mapped_column(BigInteger)
    rank_base: Mapped[int] = mapped_column(BigInteger, nullable=False, default=1, server_default=text("1"))
    rank_gaps: Mapped[list[int]] = mapped_column(
        ARRAY(BigInteger), nullable=False, default=list, server_default=text("'{}'::bigint[]")
    )

    @property
    def is_ordered(self) -> bool:
        """Whether this view needs its own materialised order (a sort or a filter)."""
        return bool(self.sort) or bool(self.filters and self.filters.get("conditions"))
