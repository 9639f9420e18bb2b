"""an index for the invitations waiting for an address (shown on every signed-in page)

Revision ID: 20261207_51
Revises: 20261127_50
Create Date: 2026-12-07 09:00:00.000000
"""

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = "20261207_51"
down_revision = "20261127_50"
branch_labels = None
depends_on = None


def upgrade():
    op.create_index(
        "ix_invitations_pending_email",
        "invitations",
        ["email"],
        unique=False,
        postgresql_where=sa.text("accepted_at IS NULL AND revoked_at IS NULL"),
    )


def downgrade():
    op.drop_index("ix_invitations_pending_email", table_name="invitations")
