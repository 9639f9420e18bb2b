"""Model endpoints of a workspace: where its AI columns may ask, with the key encrypted at rest."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, CheckConstraint, DateTime, ForeignKey, Integer, LargeBinary, String, UniqueConstraint
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from morket.core.db import IdMixin, TimestampMixin, WorkspaceScoped
from morket.extensions import db

MASK = "••••"


class AiEndpoint(IdMixin, TimestampMixin, WorkspaceScoped, db.Model):
    """One OpenAI-compatible or Anthropic endpoint of a workspace, with its own key.

    ``ciphertext`` holds the key sealed by ``morket.core.crypto`` for the workspace (bound to the
    name ``ai-endpoint``, see the service); ``hint`` keeps its last four characters so people
    can tell keys apart. ``models`` lists what the endpoint offers in pickers; ``model`` is the
    default one.
    """

    __tablename__ = "ai_endpoints"
    __table_args__ = (
        UniqueConstraint("workspace_id", "name"),
        CheckConstraint("kind IN ('openai', 'anthropic')", name="kind_known"),
        CheckConstraint("requests_per_minute IS NULL OR requests_per_minute > 0", name="rpm_positive"),
        CheckConstraint("tokens_per_minute IS NULL OR tokens_per_minute > 0", name="tpm_positive"),
    )

    name: Mapped[str] = mapped_column(String(80), nullable=False)
    kind: Mapped[str] = mapped_column(String(16), nullable=False)
    base_url: Mapped[str] = mapped_column(String(500), nullable=False)
    model: Mapped[str] = mapped_column(String(120), nullable=False)
    models: Mapped[list[str]] = mapped_column(JSONB, nullable=False, default=list)
    ciphertext: Mapped[bytes] = mapped_column(LargeBinary, nullable=False)
    key_fingerprint: Mapped[str] = mapped_column(String(16), nullable=False, index=True)
    hint: Mapped[str] = mapped_column(String(4), nullable=False, default="")
    created_by_id: Mapped[int | None] = mapped_column(BigInteger, ForeignKey("users.id", ondelete="SET NULL"))
    last_used_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # The endpoint's own limits for AI runs (None: Morket's defaults, ``executor.DEFAULT_RPM``/``_TPM``).
    requests_per_minute: Mapped[int | None] = mapped_column(Integer)
    tokens_per_minute: Mapped[int | None] = mapped_column(BigInteger)

    @property
    def masked(self) -> str:
        """What people see instead of the key, e.g. ``••••1a2b``."""
        return MASK + self.hint

    @property
    def all_models(self) -> list[str]:
        return [self.model] + [m for m in (self.models or []) if m != self.model]
