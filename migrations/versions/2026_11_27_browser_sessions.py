"""browser sessions on the server, and the index that finds revoked token families

Revision ID: 20261127_50
Revises: 20261126_43
Create Date: 2026-11-27 09:00:00.000000
"""

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = "20261127_50"
down_revision = "20261126_43"
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        "user_sessions",
        sa.Column("id", sa.BigInteger(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("user_id", sa.BigInteger(), nullable=False),
        sa.Column("key_hash", sa.String(length=64), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ended_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("ip", sa.String(length=64), nullable=False),
        sa.Column("user_agent", sa.String(length=255), nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_user_sessions_user_id_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_user_sessions")),
        sa.UniqueConstraint("key_hash", name=op.f("uq_user_sessions_key_hash")),
    )
    op.create_index(
        "ix_user_sessions_user_live", "user_sessions", ["user_id"], postgresql_where=sa.text("ended_at IS NULL")
    )
    op.create_index(
        "ix_refresh_tokens_revoked_family",
        "refresh_tokens",
        ["family_id"],
        postgresql_where=sa.text("revoked_at IS NOT NULL"),
    )
    # Sessions are rows now: the per-user version is gone, and with it every session of the old
    # form (``<id>:<version>``), which could not be ended one by one; those browsers log in again.
    op.drop_column("users", "session_version")


def downgrade():
    op.add_column("users", sa.Column("session_version", sa.Integer(), server_default="1", nullable=False))
    op.alter_column("users", "session_version", server_default=None)
    op.drop_index("ix_refresh_tokens_revoked_family", table_name="refresh_tokens")
    op.drop_index("ix_user_sessions_user_live", table_name="user_sessions")
    op.drop_table("user_sessions")
