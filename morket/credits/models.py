"""The credit ledger (append-only, one row per grant, debit, refund, adjustment or own-key use) and balances.

The balance row is the lock every change takes first, so changes to one workspace are serialised,
their ledger ids follow that order, and ``balance_after`` is the running sum of ``amount`` (a free
own-key use takes no lock and records the balance it saw). The ledger is
never updated or deleted: a database trigger refuses it (see the credits migration), except for
the cascade when the workspace itself is deleted.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, CheckConstraint, DateTime, ForeignKey, Index, String, Text, UniqueConstraint, func
from sqlalchemy.orm import Mapped, mapped_column

from morket.core.db import IdMixin, TimestampMixin, WorkspaceScoped, utcnow
from morket.extensions import db

KINDS = ("grant", "debit", "refund", "adjustment", "usage")
KEY_SOURCES = ("platform", "own", "none")
IDEMPOTENCY_KEY_MAX = 200
NOTE_MAX = 500


class LedgerEntry(IdMixin, TimestampMixin, WorkspaceScoped, db.Model):
    """One change to a workspace's credits; a debit points at the run, row, column and attempt behind it.

    Run, row, column and attempt ids are plain numbers, not foreign keys: the ledger outlives the
    runs and rows it mentions (a deleted table must not take its charges with it).
    """

    __tablename__ = "credit_ledger"
    __table_args__ = (
        UniqueConstraint("workspace_id", "idempotency_key"),
        CheckConstraint(f"kind IN ({', '.join(repr(k) for k in KINDS)})", name="kind"),
        CheckConstraint("balance_after >= 0", name="balance_after_not_negative"),
        # The history reads newest first by id (keyset pages), for all kinds or one.
        Index("ix_credit_ledger_workspace_history", "workspace_id", "id"),
        Index("ix_credit_ledger_workspace_kind", "workspace_id", "kind", "id"),
        Index("ix_credit_ledger_refers_to_id", "refers_to_id", postgresql_where="refers_to_id IS NOT NULL"),
    )

    kind: Mapped[str] = mapped_column(String(16), nullable=False)
    # Signed: debits and negative adjustments are below zero; own-key usage is zero.
    amount: Mapped[int] = mapped_column(BigInteger, nullable=False)
    balance_after: Mapped[int] = mapped_column(BigInteger, nullable=False)
    idempotency_key: Mapped[str] = mapped_column(String(IDEMPOTENCY_KEY_MAX), nullable=False)
    run_id: Mapped[int | None] = mapped_column(BigInteger)
    row_id: Mapped[int | None] = mapped_column(BigInteger)
    column_id: Mapped[int | None] = mapped_column(BigInteger)
    attempt_id: Mapped[int | None] = mapped_column(BigInteger)
    provider: Mapped[str | None] = mapped_column(String(40))
    operation: Mapped[str | None] = mapped_column(String(80))
    key_source: Mapped[str | None] = mapped_column(String(16))
    # A refund names the debit it gives back.
    refers_to_id: Mapped[int | None] = mapped_column(BigInteger, ForeignKey("credit_ledger.id"))
    # No foreign key: the record of who granted or adjusted credits stays even if the account goes.
    actor_id: Mapped[int | None] = mapped_column(BigInteger)
    note: Mapped[str] = mapped_column(Text, nullable=False, default="")


class CreditBalance(db.Model):
    """A workspace's current balance: the sum of its ledger, never below zero (a CHECK, not just code)."""

    __tablename__ = "credit_balances"
    __table_args__ = (CheckConstraint("balance >= 0", name="balance_not_negative"),)

    workspace_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("workspaces.id", ondelete="CASCADE"), primary_key=True
    )
    balance: Mapped[int] = mapped_column(BigInteger, nullable=False, default=0)
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), default=utcnow, nullable=False
    )
