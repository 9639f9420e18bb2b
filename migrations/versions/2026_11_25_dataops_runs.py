"""dataops runs: records of CSV imports and exports

Revision ID: 20261125_30
Revises: 20261125_21
Create Date: 2026-11-25 20:55:00.000000
"""
from alembic import op
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql


# revision identifiers, used by Alembic.
revision = '20261125_30'
down_revision = '20261125_21'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        'data_runs',
        sa.Column('id', sa.BigInteger(), nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
        sa.Column('workspace_id', sa.BigInteger(), nullable=False),
        sa.Column('kind', sa.String(length=16), nullable=False),
        sa.Column('status', sa.String(length=20), nullable=False),
        sa.Column('created_by_id', sa.BigInteger(), nullable=True),
        sa.Column('table_id', sa.BigInteger(), nullable=True),
        sa.Column('view_id', sa.BigInteger(), nullable=True),
        sa.Column('file_name', sa.String(length=255), nullable=False),
        sa.Column('size_bytes', sa.BigInteger(), nullable=False),
        sa.Column('settings', postgresql.JSONB(astext_type=sa.Text()), server_default=sa.text("'{}'::jsonb"), nullable=False),
        sa.Column('bytes_done', sa.BigInteger(), nullable=False),
        sa.Column('rows_in', sa.BigInteger(), nullable=False),
        sa.Column('rows_out', sa.BigInteger(), nullable=False),
        sa.Column('rows_updated', sa.BigInteger(), nullable=False),
        sa.Column('rows_skipped', sa.BigInteger(), nullable=False),
        sa.Column('error_count', sa.BigInteger(), nullable=False),
        sa.Column('message', sa.Text(), nullable=True),
        sa.Column('cancel_requested', sa.Boolean(), nullable=False),
        sa.Column('started_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('finished_at', sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(['created_by_id'], ['users.id'], name=op.f('fk_data_runs_created_by_id_users'), ondelete='SET NULL'),
        sa.ForeignKeyConstraint(['table_id'], ['tables.id'], name=op.f('fk_data_runs_table_id_tables'), ondelete='SET NULL'),
        sa.ForeignKeyConstraint(['view_id'], ['table_views.id'], name=op.f('fk_data_runs_view_id_table_views'), ondelete='SET NULL'),
        sa.ForeignKeyConstraint(['workspace_id'], ['workspaces.id'], name=op.f('fk_data_runs_workspace_id_workspaces'), ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_data_runs')),
    )
    op.create_index(op.f('ix_data_runs_workspace_id'), 'data_runs', ['workspace_id'], unique=False)
    op.create_index('ix_data_runs_workspace_created', 'data_runs', ['workspace_id', 'created_at'], unique=False)


def downgrade():
    op.drop_index('ix_data_runs_workspace_created', table_name='data_runs')
    op.drop_index(op.f('ix_data_runs_workspace_id'), table_name='data_runs')
    op.drop_table('data_runs')
