"""CRM pulls into tables (list or query, upsert key, last-modified cursor)

Revision ID: 20261207_57
Revises: 20261207_56
Create Date: 2026-12-07 21:40:00.000000
"""

# revision identifiers, used by Alembic.
revision = "20261207_57"
down_revision = "20261207_56"
branch_labels = None
depends_on = None


def upgrade():
    pass


def downgrade():
    pass
