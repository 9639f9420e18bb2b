"""AI model endpoints, AI columns' settings and budgets

Revision ID: 20261207_58
Revises: 20261207_57
Create Date: 2026-12-08 00:00:00.000000
"""

# revision identifiers, used by Alembic.
revision = "20261207_58"
down_revision = "20261207_57"
branch_labels = None
depends_on = None


def upgrade():
    pass


def downgrade():
    pass
