"""Live grid and fast sorts/deletes at 10M rows

Revision ID: 20261207_61
Revises: 20261207_60
Create Date: 2026-12-08 00:00:00.000000
"""

# revision identifiers, used by Alembic.
revision = "20261207_61"
down_revision = "20261207_60"
branch_labels = None
depends_on = None


def upgrade():
    pass


def downgrade():
    pass
