"""scrape requests

Revision ID: 20261126_43
Revises: 20261126_42
Create Date: 2026-11-26 02:00:00.000000
"""
from alembic import op
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql


# revision identifiers, used by Alembic.
revision = '20261126_43'
down_revision = '20261126_42'
branch_labels = None
depends_on = None


def upgrade():
    pass


def downgrade():
    pass
