"""Billing: Stripe customers, subscriptions, processed events and plan state

Revision ID: 20261207_59
Revises: 20261207_58
Create Date: 2026-12-08 00:00:00.000000
"""

# revision identifiers, used by Alembic.
revision = "20261207_59"
down_revision = "20261207_58"
branch_labels = None
depends_on = None


def upgrade():
    pass


def downgrade():
    pass
