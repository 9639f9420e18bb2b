"""The search index's tables, declared for the schema check (search reads and writes them in SQL).

``search_documents`` holds one row per indexed cell; ``search_words`` the distinct words the
typo way scans; ``search_pending`` the rows the storage
triggers marked; ``search_tables`` the tables whose triggers are installed; ``search_syncs`` the
lag of recent syncs. See ``morket.search.indexing``.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, DateTime, Identity, Index, Integer, PrimaryKeyConstraint, Text, text
from sqlalchemy.dialects.postgresql import ARRAY, TSVECTOR
from sqlalchemy.orm import Mapped, mapped_column

from morket.extensions import db


class SearchDocument(db.Model):
    __tablename__ = "search_documents"
    __table_args__ = (
        PrimaryKeyConstraint("table_id", "row_id", "column_id", name="search_documents_pkey"),
        Index("ix_search_documents_tsv", "tsv", postgresql_using="gin"),
        Index("ix_search_documents_norm", "workspace_id", "norm", postgresql_ops={"norm": "text_pattern_ops"}),
        Index("ix_search_documents_workspace", "workspace_id", "table_id"),
    )

    workspace_id: Mapped[int] = mapped_column(BigInteger, nullable=False)
    table_id: Mapped[int] = mapped_column(BigInteger)
    row_id: Mapped[int] = mapped_column(BigInteger)
    column_id: Mapped[int] = mapped_column(BigInteger)
    value: Mapped[str] = mapped_column(Text, nullable=False)
    norm: Mapped[str] = mapped_column(Text, nullable=False)
    tsv: Mapped[str] = mapped_column(TSVECTOR, nullable=False)
    states: Mapped[list[str]] = mapped_column(ARRAY(Text), nullable=False, server_default=text("'{}'"))
    providers: Mapped[list[str]] = mapped_column(ARRAY(Text), nullable=False, server_default=text("'{}'"))


class SearchWord(db.Model):
    """A distinct word (lexeme) of a workspace's documents: what query words are completed from and
    what the typo way scans."""

    __tablename__ = "search_words"
    __table_args__ = (
        PrimaryKeyConstraint("workspace_id", "word", name="search_words_pkey"),
        Index("ix_search_words_trgm", "word", postgresql_using="gin", postgresql_ops={"word": "gin_trgm_ops"}),
        Index("ix_search_words_prefix", "workspace_id", "word", postgresql_ops={"word": "text_pattern_ops"}),
    )

    workspace_id: Mapped[int] = mapped_column(BigInteger, autoincrement=False)
    word: Mapped[str] = mapped_column(Text)


class SearchPending(db.Model):
    __tablename__ = "search_pending"
    __table_args__ = (PrimaryKeyConstraint("table_id", "row_id", name="search_pending_pkey"),)

    table_id: Mapped[int] = mapped_column(BigInteger)
    row_id: Mapped[int] = mapped_column(BigInteger)
    marked_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), nullable=False, server_default=text("clock_timestamp()")
    )


class SearchTable(db.Model):
    __tablename__ = "search_tables"
    __table_args__ = (PrimaryKeyConstraint("table_id", name="search_tables_pkey"),)

    table_id: Mapped[int] = mapped_column(BigInteger, autoincrement=False)
    workspace_id: Mapped[int] = mapped_column(BigInteger, nullable=False)
    indexed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class SearchSync(db.Model):
    __tablename__ = "search_syncs"
    __table_args__ = (PrimaryKeyConstraint("id", name="search_syncs_pkey"),)

    id: Mapped[int] = mapped_column(BigInteger, Identity(always=True))
    finished_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), nullable=False, server_default=text("clock_timestamp()")
    )
    rows: Mapped[int] = mapped_column(Integer, nullable=False)
    lag_ms: Mapped[int] = mapped_column(Integer, nullable=False)
