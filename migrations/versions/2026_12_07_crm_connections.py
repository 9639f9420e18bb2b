"""CRM connections (HubSpot, Salesforce) and their encrypted tokens

Revision ID: 20261207_55
Revises: 20261207_54
Create Date: 2026-12-07 20:40:00.000000
"""

# revision identifiers, used by Alembic.
revision = "20261207_55"
down_revision = "20261207_54"
branch_labels = None
depends_on = None


def upgrade():
    pass


def downgrade():
    pass
