"""CRM field mappings per table and CRM pushes on the row-run engine

Revision ID: 20261207_56
Revises: 20261207_55
Create Date: 2026-12-07 21:40:00.000000
"""

# revision identifiers, used by Alembic.
revision = "20261207_56"
down_revision = "20261207_55"
branch_labels = None
depends_on = None


def upgrade():
    pass


def downgrade():
    pass
