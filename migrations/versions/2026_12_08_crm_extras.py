"""CRM: records deleted in the CRM, revoked grants

Revision ID: 20261207_62
Revises: 20261207_61
Create Date: 2026-12-08 00:00:00.000000
"""

# revision identifiers, used by Alembic.
revision = "20261207_62"
down_revision = "20261207_61"
branch_labels = None
depends_on = None


def upgrade():
    pass


def downgrade():
    pass
