"""AI columns: budgets per run and per workspace per month, dry runs

Revision ID: 20261207_63
Revises: 20261207_62
Create Date: 2026-12-08 00:00:00.000000
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

# revision identifiers, used by Alembic.
revision = "20261207_63"
down_revision = "20261207_62"
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        "ai_workspace_budgets",
        sa.Column("workspace_id", sa.BigInteger(), nullable=False),
        sa.Column("monthly_credits", sa.BigInteger(), nullable=True),
        sa.Column("updated_by_id", sa.BigInteger(), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.CheckConstraint(
            "monthly_credits IS NULL OR monthly_credits >= 0",
            name=op.f("ck_ai_workspace_budgets_monthly_credits_not_negative"),
        ),
        sa.ForeignKeyConstraint(
            ["workspace_id"],
            ["workspaces.id"],
            name=op.f("fk_ai_workspace_budgets_workspace_id_workspaces"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["updated_by_id"],
            ["users.id"],
            name=op.f("fk_ai_workspace_budgets_updated_by_id_users"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("workspace_id", name=op.f("pk_ai_workspace_budgets")),
    )
    op.create_table(
        "ai_dry_runs",
        sa.Column("id", sa.BigInteger(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("workspace_id", sa.BigInteger(), nullable=False),
        sa.Column("table_id", sa.BigInteger(), nullable=False),
        sa.Column("column_id", sa.BigInteger(), nullable=False),
        sa.Column("created_by_id", sa.BigInteger(), nullable=True),
        sa.Column(
            "config", postgresql.JSONB(astext_type=sa.Text()), server_default=sa.text("'{}'::jsonb"), nullable=False
        ),
        sa.Column(
            "samples", postgresql.JSONB(astext_type=sa.Text()), server_default=sa.text("'[]'::jsonb"), nullable=False
        ),
        sa.Column("credits", sa.BigInteger(), nullable=False),
        sa.Column("input_tokens", sa.BigInteger(), nullable=False),
        sa.Column("output_tokens", sa.BigInteger(), nullable=False),
        sa.Column("rows_total", sa.BigInteger(), nullable=False),
        sa.Column("estimate_credits", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["workspace_id"], ["workspaces.id"], name=op.f("fk_ai_dry_runs_workspace_id_workspaces"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["table_id"], ["tables.id"], name=op.f("fk_ai_dry_runs_table_id_tables"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["column_id"], ["table_columns.id"], name=op.f("fk_ai_dry_runs_column_id_table_columns"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["created_by_id"], ["users.id"], name=op.f("fk_ai_dry_runs_created_by_id_users"), ondelete="SET NULL"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ai_dry_runs")),
    )
    op.create_index(op.f("ix_ai_dry_runs_workspace_id"), "ai_dry_runs", ["workspace_id"], unique=False)
    op.create_index("ix_ai_dry_runs_column_created", "ai_dry_runs", ["column_id", "created_at"], unique=False)


def downgrade():
    op.drop_index("ix_ai_dry_runs_column_created", table_name="ai_dry_runs")
    op.drop_index(op.f("ix_ai_dry_runs_workspace_id"), table_name="ai_dry_runs")
    op.drop_table("ai_dry_runs")
    op.drop_table("ai_workspace_budgets")
