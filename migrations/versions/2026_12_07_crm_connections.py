"""CRM connections (HubSpot, Salesforce) and their encrypted tokens

Revision ID: 20261207_55
Revises: 20261207_54
Create Date: 2026-12-07 20:40:00.000000

One connection per workspace and CRM; the access and refresh tokens are AES-256-GCM ciphertexts
under the workspace's key (morket.core.crypto), never plaintext.
"""

from alembic import op
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

# revision identifiers, used by Alembic.
revision = "20261207_55"
down_revision = "20261207_54"
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        "crm_connections",
        sa.Column("provider", sa.String(length=32), nullable=False),
        sa.Column("account_id", sa.String(length=64), nullable=False),
        sa.Column("account_name", sa.String(length=255), nullable=False),
        sa.Column("scopes", postgresql.ARRAY(sa.String(length=120)), nullable=False),
        sa.Column("instance_url", sa.String(length=500), nullable=True),
        sa.Column("access_ciphertext", sa.LargeBinary(), nullable=False),
        sa.Column("refresh_ciphertext", sa.LargeBinary(), nullable=True),
        sa.Column("key_fingerprint", sa.String(length=16), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("token_version", sa.Integer(), nullable=False),
        sa.Column("connected_by_id", sa.BigInteger(), nullable=True),
        sa.Column("last_sync_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("last_error_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("id", sa.BigInteger(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("workspace_id", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["connected_by_id"],
            ["users.id"],
            name=op.f("fk_crm_connections_connected_by_id_users"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["workspace_id"],
            ["workspaces.id"],
            name=op.f("fk_crm_connections_workspace_id_workspaces"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_crm_connections")),
        sa.UniqueConstraint("workspace_id", "provider", name=op.f("uq_crm_connections_workspace_id_provider")),
    )
    op.create_index(op.f("ix_crm_connections_workspace_id"), "crm_connections", ["workspace_id"], unique=False)


def downgrade():
    op.drop_index(op.f("ix_crm_connections_workspace_id"), table_name="crm_connections")
    op.drop_table("crm_connections")
