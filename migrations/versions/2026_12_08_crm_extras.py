"""CRM: records deleted in the CRM, revoked grants

What a pull source does with a row whose record was deleted (or archived, or left the list) in
the CRM (``on_delete``: keep | remove, default keep), and how many rows a pull removed.

Revision ID: 20261207_62
Revises: 20261207_61
Create Date: 2026-12-08 00:00:00.000000
"""

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = "20261207_62"
down_revision = "20261207_61"
branch_labels = None
depends_on = None


def upgrade():
    op.add_column("crm_pull_sources", sa.Column("on_delete", sa.String(8), nullable=False, server_default="keep"))
    op.add_column("crm_pulls", sa.Column("removed", sa.Integer(), nullable=False, server_default="0"))


def downgrade():
    op.drop_column("crm_pulls", "removed")
    op.drop_column("crm_pull_sources", "on_delete")
