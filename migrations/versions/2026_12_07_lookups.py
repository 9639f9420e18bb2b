"""lookup columns

Revision ID: 20261207_52
Revises: 20261207_51
Create Date: 2026-12-07 20:40:00.000000
"""

# revision identifiers, used by Alembic.
revision = "20261207_52"
down_revision = "20261207_51"
branch_labels = None
depends_on = None


def upgrade():
    pass


def downgrade():
    pass
