"""table column jobs

Revision ID: 20261125_22
Revises: 20261125_30
Create Date: 2026-11-25 21:20:00.000000

Progress of column jobs (retype, formula recompute), read by the grid's progress bar
(morket.tables.column_service.ColumnJob).
"""
from alembic import op
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql


# revision identifiers, used by Alembic.
revision = '20261125_22'
down_revision = '20261125_30'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        'table_column_jobs',
        sa.Column('table_id', sa.BigInteger(), nullable=False),
        sa.Column('column_id', sa.BigInteger(), nullable=False),
        sa.Column('kind', sa.String(length=20), nullable=False),
        sa.Column('state', sa.String(length=20), nullable=False),
        sa.Column('total', sa.BigInteger(), nullable=False),
        sa.Column('done', sa.BigInteger(), nullable=False),
        sa.Column('failed_count', sa.BigInteger(), nullable=False),
        sa.Column('params', postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column('sample', postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column('message', sa.Text(), nullable=True),
        sa.Column('created_by_id', sa.BigInteger(), nullable=True),
        sa.Column('finished_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('id', sa.BigInteger(), nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
        sa.Column('workspace_id', sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(['table_id'], ['tables.id'], name=op.f('fk_table_column_jobs_table_id_tables'), ondelete='CASCADE'),
        sa.ForeignKeyConstraint(['created_by_id'], ['users.id'], name=op.f('fk_table_column_jobs_created_by_id_users'), ondelete='SET NULL'),
        sa.ForeignKeyConstraint(['workspace_id'], ['workspaces.id'], name=op.f('fk_table_column_jobs_workspace_id_workspaces'), ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_table_column_jobs')),
    )
    op.create_index(op.f('ix_table_column_jobs_workspace_id'), 'table_column_jobs', ['workspace_id'], unique=False)
    op.create_index('ix_table_column_jobs_table_id', 'table_column_jobs', ['table_id', 'id'], unique=False)


def downgrade():
    op.drop_index('ix_table_column_jobs_table_id', table_name='table_column_jobs')
    op.drop_index(op.f('ix_table_column_jobs_workspace_id'), table_name='table_column_jobs')
    op.drop_table('table_column_jobs')
