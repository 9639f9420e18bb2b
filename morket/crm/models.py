"""CRM connections: one OAuth connection per workspace and CRM, its tokens encrypted at rest."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, DateTime, ForeignKey, Integer, LargeBinary, String, Text, UniqueConstraint
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import Mapped, mapped_column

from morket.core.db import IdMixin, TimestampMixin, WorkspaceScoped
from morket.extensions import db


class CrmConnection(IdMixin, TimestampMixin, WorkspaceScoped, db.Model):
    """A workspace's connection to HubSpot or Salesforce: who the CRM account is, and its tokens.

    ``access_ciphertext`` and ``refresh_ciphertext`` hold AES-256-GCM ciphertexts under the
    workspace's key (``morket.core.crypto``), bound to the connection's provider and token kind;
    ``key_fingerprint`` names the master key. ``token_version`` grows with every refresh, so a
    process that waited for another one's refresh can tell that its token is already new.
    ``expires_at`` is None where the CRM does not say (Salesforce: refreshed on a 401).
    """

    __tablename__ = "crm_connections"
    __table_args__ = (UniqueConstraint("workspace_id", "provider"),)

    provider: Mapped[str] = mapped_column(String(32), nullable=False)
    account_id: Mapped[str] = mapped_column(String(64), nullable=False)
    account_name: Mapped[str] = mapped_column(String(255), nullable=False, default="")
    scopes: Mapped[list[str]] = mapped_column(ARRAY(String(120)), nullable=False, default=list)
    instance_url: Mapped[str | None] = mapped_column(String(500))
    access_ciphertext: Mapped[bytes] = mapped_column(LargeBinary, nullable=False)
    refresh_ciphertext: Mapped[bytes | None] = mapped_column(LargeBinary)
    key_fingerprint: Mapped[str] = mapped_column(String(16), nullable=False)
    expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    token_version: Mapped[int] = mapped_column(Integer, nullable=False, default=1)
    connected_by_id: Mapped[int | None] = mapped_column(BigInteger, ForeignKey("users.id", ondelete="SET NULL"))
    last_sync_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    last_error: Mapped[str | None] = mapped_column(Text)
    last_error_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
