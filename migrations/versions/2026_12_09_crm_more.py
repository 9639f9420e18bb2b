"""CRM sync: push and pull additions

Revision ID: 20261207_65
Revises: 20261207_64
Create Date: 2026-12-09 00:00:00.000000
"""

# revision identifiers, used by Alembic.
revision = "20261207_65"
down_revision = "20261207_64"
branch_labels = None
depends_on = None


def upgrade():
    pass


def downgrade():
    pass
