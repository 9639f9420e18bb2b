"""CRM field mappings per table and CRM pushes on the row-run engine

Revision ID: 20261207_56
Revises: 20261207_55
Create Date: 2026-12-07 21:40:00.000000

A run now says which executor runs it (``kind``: enrichment or crm_push); a push is a run whose
column is the one receiving the CRM record ids. ``crm_mappings`` keeps one mapping per table and
CRM: the object, the match key, the record-id column and the column-to-field pairs.
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

# revision identifiers, used by Alembic.
revision = "20261207_56"
down_revision = "20261207_55"
branch_labels = None
depends_on = None


def upgrade():
    op.add_column(
        "enrichment_runs",
        sa.Column("kind", sa.String(length=16), server_default="enrichment", nullable=False),
    )
    op.create_table(
        "crm_mappings",
        sa.Column("table_id", sa.BigInteger(), nullable=False),
        sa.Column("provider", sa.String(length=32), nullable=False),
        sa.Column("object", sa.String(length=64), nullable=False),
        sa.Column("key_field", sa.String(length=120), nullable=False),
        sa.Column("key_column_id", sa.BigInteger(), nullable=True),
        sa.Column("record_id_column_id", sa.BigInteger(), nullable=True),
        sa.Column(
            "fields", postgresql.JSONB(astext_type=sa.Text()), server_default=sa.text("'[]'::jsonb"), nullable=False
        ),
        sa.Column("updated_by_id", sa.BigInteger(), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("id", sa.BigInteger(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("workspace_id", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["table_id"], ["tables.id"], name=op.f("fk_crm_mappings_table_id_tables"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["key_column_id"],
            ["table_columns.id"],
            name=op.f("fk_crm_mappings_key_column_id_table_columns"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["record_id_column_id"],
            ["table_columns.id"],
            name=op.f("fk_crm_mappings_record_id_column_id_table_columns"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["updated_by_id"], ["users.id"], name=op.f("fk_crm_mappings_updated_by_id_users"), ondelete="SET NULL"
        ),
        sa.ForeignKeyConstraint(
            ["workspace_id"],
            ["workspaces.id"],
            name=op.f("fk_crm_mappings_workspace_id_workspaces"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_crm_mappings")),
        sa.UniqueConstraint("table_id", "provider", name=op.f("uq_crm_mappings_table_id_provider")),
    )
    op.create_index(op.f("ix_crm_mappings_workspace_id"), "crm_mappings", ["workspace_id"], unique=False)


def downgrade():
    op.drop_index(op.f("ix_crm_mappings_workspace_id"), table_name="crm_mappings")
    op.drop_table("crm_mappings")
    op.drop_column("enrichment_runs", "kind")
