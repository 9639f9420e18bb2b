"""AI research agent: runs, steps and cited sources

Revision ID: 20261207_64
Revises: 20261207_63
Create Date: 2026-12-09 00:00:00.000000
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

# revision identifiers, used by Alembic.
revision = "20261207_64"
down_revision = "20261207_63"
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        "ai_research_results",
        sa.Column("id", sa.BigInteger(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("workspace_id", sa.BigInteger(), nullable=False),
        sa.Column("table_id", sa.BigInteger(), nullable=False),
        sa.Column("column_id", sa.BigInteger(), nullable=False),
        sa.Column("row_id", sa.BigInteger(), nullable=False),
        sa.Column("run_id", sa.BigInteger(), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("answer", sa.Text(), nullable=True),
        sa.Column(
            "record", postgresql.JSONB(astext_type=sa.Text()), server_default=sa.text("'{}'::jsonb"), nullable=False
        ),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.ForeignKeyConstraint(
            ["workspace_id"],
            ["workspaces.id"],
            name=op.f("fk_ai_research_results_workspace_id_workspaces"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["table_id"], ["tables.id"], name=op.f("fk_ai_research_results_table_id_tables"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["column_id"],
            ["table_columns.id"],
            name=op.f("fk_ai_research_results_column_id_table_columns"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["run_id"],
            ["enrichment_runs.id"],
            name=op.f("fk_ai_research_results_run_id_enrichment_runs"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ai_research_results")),
        sa.UniqueConstraint("column_id", "row_id", name=op.f("uq_ai_research_results_column_id_row_id")),
    )
    op.create_index(op.f("ix_ai_research_results_workspace_id"), "ai_research_results", ["workspace_id"], unique=False)
    # Per-endpoint limits of AI runs (requests and tokens a minute), set on the AI models page.
    op.add_column("ai_endpoints", sa.Column("requests_per_minute", sa.Integer(), nullable=True))
    op.add_column("ai_endpoints", sa.Column("tokens_per_minute", sa.BigInteger(), nullable=True))
    op.create_check_constraint(
        op.f("ck_ai_endpoints_rpm_positive"), "ai_endpoints", "requests_per_minute IS NULL OR requests_per_minute > 0"
    )
    op.create_check_constraint(
        op.f("ck_ai_endpoints_tpm_positive"), "ai_endpoints", "tokens_per_minute IS NULL OR tokens_per_minute > 0"
    )


def downgrade():
    op.drop_constraint(op.f("ck_ai_endpoints_tpm_positive"), "ai_endpoints", type_="check")
    op.drop_constraint(op.f("ck_ai_endpoints_rpm_positive"), "ai_endpoints", type_="check")
    op.drop_column("ai_endpoints", "tokens_per_minute")
    op.drop_column("ai_endpoints", "requests_per_minute")
    op.drop_index(op.f("ix_ai_research_results_workspace_id"), table_name="ai_research_results")
    op.drop_table("ai_research_results")
