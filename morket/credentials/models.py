"""Provider credentials: a workspace's own API key for a data provider, encrypted at rest."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, DateTime, ForeignKey, LargeBinary, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from morket.core.db import IdMixin, TimestampMixin, WorkspaceScoped
from morket.extensions import db

MASK = "••••"


class ProviderCredential(IdMixin, TimestampMixin, WorkspaceScoped, db.Model):
    """One provider key of a workspace: ciphertext only, never the secret; at most one per provider.

    ``hint`` keeps the last four characters of a long key (as payment cards do) so a person can
    tell keys apart; ``key_fingerprint`` names the master key that encrypted ``ciphertext``.
    """

    __tablename__ = "provider_credentials"
    __table_args__ = (UniqueConstraint("workspace_id", "provider"),)

    provider: Mapped[str] = mapped_column(String(32), nullable=False)
    label: Mapped[str | None] = mapped_column(String(120))
    ciphertext: Mapped[bytes] = mapped_column(LargeBinary, nullable=False)
    key_fingerprint: Mapped[str] = mapped_column(String(16), nullable=False, index=True)
    hint: Mapped[str] = mapped_column(String(4), nullable=False, default="")
    created_by_id: Mapped[int | None] = mapped_column(BigInteger, ForeignKey("users.id", ondelete="SET NULL"))
    last_used_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    @property
    def masked(self) -> str:
        """What people see instead of the key, e.g. ``••••1a2b``."""
        return MASK + self.hint
