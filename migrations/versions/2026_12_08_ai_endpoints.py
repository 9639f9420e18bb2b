"""AI model endpoints, AI columns' settings and budgets

Revision ID: 20261207_58
Revises: 20261207_57
Create Date: 2026-12-08 00:00:00.000000
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

# revision identifiers, used by Alembic.
revision = "20261207_58"
down_revision = "20261207_57"
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        "ai_endpoints",
        sa.Column("id", sa.BigInteger(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("workspace_id", sa.BigInteger(), nullable=False),
        sa.Column("name", sa.String(length=80), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("base_url", sa.String(length=500), nullable=False),
        sa.Column("model", sa.String(length=120), nullable=False),
        sa.Column("models", postgresql.JSONB(astext_type=sa.Text()), server_default=sa.text("'[]'::jsonb"), nullable=False),
        sa.Column("ciphertext", sa.LargeBinary(), nullable=False),
        sa.Column("key_fingerprint", sa.String(length=16), nullable=False),
        sa.Column("hint", sa.String(length=4), nullable=False),
        sa.Column("created_by_id", sa.BigInteger(), nullable=True),
        sa.Column("last_used_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint("kind IN ('openai', 'anthropic')", name=op.f("ck_ai_endpoints_kind_known")),
        sa.ForeignKeyConstraint(["workspace_id"], ["workspaces.id"], name=op.f("fk_ai_endpoints_workspace_id_workspaces"), ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["created_by_id"], ["users.id"], name=op.f("fk_ai_endpoints_created_by_id_users"), ondelete="SET NULL"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ai_endpoints")),
        sa.UniqueConstraint("workspace_id", "name", name=op.f("uq_ai_endpoints_workspace_id_name")),
    )
    op.create_index(op.f("ix_ai_endpoints_workspace_id"), "ai_endpoints", ["workspace_id"], unique=False)
    op.create_index(op.f("ix_ai_endpoints_key_fingerprint"), "ai_endpoints", ["key_fingerprint"], unique=False)


def downgrade():
    op.drop_index(op.f("ix_ai_endpoints_key_fingerprint"), table_name="ai_endpoints")
    op.drop_index(op.f("ix_ai_endpoints_workspace_id"), table_name="ai_endpoints")
    op.drop_table("ai_endpoints")
