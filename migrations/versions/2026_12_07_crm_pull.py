"""CRM pulls into tables (list or query, upsert key, last-modified cursor)

Revision ID: 20261207_57
Revises: 20261207_56
Create Date: 2026-12-07 21:40:00.000000

``crm_pull_sources``: what a table pulls from a CRM (a HubSpot list or object, a Salesforce query
kept as parts), the field-to-column map, the upsert key and the last-modified high-water mark.
``crm_pulls``: each run, with its counts, resume cursor and cancel flag.
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

# revision identifiers, used by Alembic.
revision = "20261207_57"
down_revision = "20261207_56"
branch_labels = None
depends_on = None


def _common(table: str) -> list:
    return [
        sa.Column("created_by_id", sa.BigInteger(), nullable=True),
        sa.Column("id", sa.BigInteger(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("workspace_id", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["created_by_id"], ["users.id"], name=op.f(f"fk_{table}_created_by_id_users"), ondelete="SET NULL"
        ),
        sa.ForeignKeyConstraint(
            ["workspace_id"], ["workspaces.id"], name=op.f(f"fk_{table}_workspace_id_workspaces"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f(f"pk_{table}")),
    ]


def upgrade():
    op.create_table(
        "crm_pull_sources",
        sa.Column("table_id", sa.BigInteger(), nullable=False),
        sa.Column("provider", sa.String(length=32), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("label", sa.String(length=200), nullable=False),
        sa.Column("spec", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("columns", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("key_column_id", sa.BigInteger(), nullable=True),
        sa.Column("high_water", sa.String(length=40), nullable=True),
        sa.Column("last_run_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_status", sa.String(length=16), nullable=True),
        sa.ForeignKeyConstraint(
            ["table_id"], ["tables.id"], name=op.f("fk_crm_pull_sources_table_id_tables"), ondelete="CASCADE"
        ),
        *_common("crm_pull_sources"),
    )
    op.create_index(op.f("ix_crm_pull_sources_table_id"), "crm_pull_sources", ["table_id"], unique=False)
    op.create_index(op.f("ix_crm_pull_sources_workspace_id"), "crm_pull_sources", ["workspace_id"], unique=False)
    op.create_table(
        "crm_pulls",
        sa.Column("source_id", sa.BigInteger(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("full", sa.Boolean(), nullable=False),
        sa.Column("since", sa.String(length=40), nullable=True),
        sa.Column("rows_read", sa.Integer(), nullable=False),
        sa.Column("rows_written", sa.Integer(), nullable=False),
        sa.Column("inserted", sa.Integer(), nullable=False),
        sa.Column("updated", sa.Integer(), nullable=False),
        sa.Column("cursor", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("seen_high", sa.String(length=40), nullable=True),
        sa.Column("cancel_requested", sa.Boolean(), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["source_id"],
            ["crm_pull_sources.id"],
            name=op.f("fk_crm_pulls_source_id_crm_pull_sources"),
            ondelete="CASCADE",
        ),
        *_common("crm_pulls"),
    )
    op.create_index(op.f("ix_crm_pulls_source_id"), "crm_pulls", ["source_id"], unique=False)
    op.create_index(op.f("ix_crm_pulls_workspace_id"), "crm_pulls", ["workspace_id"], unique=False)


def downgrade():
    op.drop_table("crm_pulls")
    op.drop_table("crm_pull_sources")
