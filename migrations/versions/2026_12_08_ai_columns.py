"""AI columns: budgets per run and per workspace per month, dry runs

Revision ID: 20261207_63
Revises: 20261207_62
Create Date: 2026-12-08 00:00:00.000000
"""

# revision identifiers, used by Alembic.
revision = "20261207_63"
down_revision = "20261207_62"
branch_labels = None
depends_on = None


def upgrade():
    pass


def downgrade():
    pass
