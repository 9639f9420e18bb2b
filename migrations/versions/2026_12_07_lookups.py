"""lookup columns: find the lookups that read a table, and flag tables that lookups read

Revision ID: 20261207_52
Revises: 20261207_51
Create Date: 2026-12-07 20:40:00.000000
"""

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = "20261207_52"
down_revision = "20261207_51"
branch_labels = None
depends_on = None


def upgrade():
    # True while a lookup column reads this table: its writes then recompute those lookups.
    op.add_column(
        "tables",
        sa.Column("lookup_source", sa.Boolean(), nullable=False, server_default=sa.text("false")),
    )
    op.create_index(
        "ix_table_columns_lookup_source",
        "table_columns",
        [sa.text("((config ->> 'source_table_id')::bigint)")],
        unique=False,
        postgresql_where=sa.text("type = 'lookup'"),
    )


def downgrade():
    op.drop_index("ix_table_columns_lookup_source", table_name="table_columns")
    op.drop_column("tables", "lookup_source")
