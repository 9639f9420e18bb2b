"""provider credentials

Revision ID: 20261126_40
Revises: 20261125_22
Create Date: 2026-11-26 02:00:00.000000

Per-workspace provider API keys, encrypted with AES-256-GCM (morket.core.crypto).
"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '20261126_40'
down_revision = '20261125_22'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        'provider_credentials',
        sa.Column('provider', sa.String(length=32), nullable=False),
        sa.Column('label', sa.String(length=120), nullable=True),
        sa.Column('ciphertext', sa.LargeBinary(), nullable=False),
        sa.Column('key_fingerprint', sa.String(length=16), nullable=False),
        sa.Column('hint', sa.String(length=4), nullable=False),
        sa.Column('created_by_id', sa.BigInteger(), nullable=True),
        sa.Column('last_used_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('id', sa.BigInteger(), nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
        sa.Column('workspace_id', sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(['created_by_id'], ['users.id'], name=op.f('fk_provider_credentials_created_by_id_users'), ondelete='SET NULL'),
        sa.ForeignKeyConstraint(['workspace_id'], ['workspaces.id'], name=op.f('fk_provider_credentials_workspace_id_workspaces'), ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_provider_credentials')),
        sa.UniqueConstraint('workspace_id', 'provider', name=op.f('uq_provider_credentials_workspace_id_provider')),
    )
    op.create_index(op.f('ix_provider_credentials_key_fingerprint'), 'provider_credentials', ['key_fingerprint'], unique=False)
    op.create_index(op.f('ix_provider_credentials_workspace_id'), 'provider_credentials', ['workspace_id'], unique=False)


def downgrade():
    op.drop_index(op.f('ix_provider_credentials_workspace_id'), table_name='provider_credentials')
    op.drop_index(op.f('ix_provider_credentials_key_fingerprint'), table_name='provider_credentials')
    op.drop_table('provider_credentials')
