"""Search: the index of a workspace's cells (full text and trigrams)

Revision ID: 20261207_60
Revises: 20261207_59
Create Date: 2026-12-08 00:00:00.000000
"""

# revision identifiers, used by Alembic.
revision = "20261207_60"
down_revision = "20261207_59"
branch_labels = None
depends_on = None


def upgrade():
    pass


def downgrade():
    pass
