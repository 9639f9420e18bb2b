"""enrichment runs, run rows, attempts and cache

Revision ID: 20261126_42
Revises: 20261126_41
Create Date: 2026-11-26 02:00:00.000000
"""
from alembic import op
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql


# revision identifiers, used by Alembic.
revision = '20261126_42'
down_revision = '20261126_41'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        'enrichment_runs',
        sa.Column('id', sa.BigInteger(), nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
        sa.Column('workspace_id', sa.BigInteger(), nullable=False),
        sa.Column('table_id', sa.BigInteger(), nullable=False),
        sa.Column('column_id', sa.BigInteger(), nullable=False),
        sa.Column('scope', sa.String(length=16), nullable=False),
        sa.Column('status', sa.String(length=16), nullable=False),
        sa.Column('pause_reason', sa.Text(), nullable=True),
        sa.Column('config', postgresql.JSONB(astext_type=sa.Text()), server_default=sa.text("'{}'::jsonb"), nullable=False),
        sa.Column('total', sa.BigInteger(), nullable=False),
        sa.Column('done', sa.BigInteger(), nullable=False),
        sa.Column('succeeded', sa.BigInteger(), nullable=False),
        sa.Column('no_data', sa.BigInteger(), nullable=False),
        sa.Column('failed', sa.BigInteger(), nullable=False),
        sa.Column('skipped', sa.BigInteger(), nullable=False),
        sa.Column('cancelled', sa.BigInteger(), nullable=False),
        sa.Column('credits_used', sa.BigInteger(), nullable=False),
        sa.Column('estimate_credits', sa.BigInteger(), nullable=False),
        sa.Column('created_by_id', sa.BigInteger(), nullable=True),
        sa.Column('started_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('finished_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('updated_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
        sa.ForeignKeyConstraint(['column_id'], ['table_columns.id'], name=op.f('fk_enrichment_runs_column_id_table_columns'), ondelete='CASCADE'),
        sa.ForeignKeyConstraint(['created_by_id'], ['users.id'], name=op.f('fk_enrichment_runs_created_by_id_users'), ondelete='SET NULL'),
        sa.ForeignKeyConstraint(['table_id'], ['tables.id'], name=op.f('fk_enrichment_runs_table_id_tables'), ondelete='CASCADE'),
        sa.ForeignKeyConstraint(['workspace_id'], ['workspaces.id'], name=op.f('fk_enrichment_runs_workspace_id_workspaces'), ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_enrichment_runs')),
    )
    op.create_index(op.f('ix_enrichment_runs_workspace_id'), 'enrichment_runs', ['workspace_id'], unique=False)
    op.create_index('ix_enrichment_runs_workspace_created', 'enrichment_runs', ['workspace_id', 'created_at'], unique=False)
    op.create_index('ix_enrichment_runs_column_id', 'enrichment_runs', ['column_id'], unique=False)
    op.create_index('ix_enrichment_runs_active', 'enrichment_runs', ['status'], unique=False,
                    postgresql_where=sa.text("status IN ('queued','running','paused')"))

    op.create_table(
        'enrichment_run_rows',
        sa.Column('workspace_id', sa.BigInteger(), nullable=False),
        sa.Column('run_id', sa.BigInteger(), nullable=False),
        sa.Column('row_id', sa.BigInteger(), nullable=False),
        sa.Column('status', sa.String(length=20), nullable=False),
        sa.Column('state', sa.String(length=20), nullable=True),
        sa.Column('step_index', sa.Integer(), nullable=False),
        sa.Column('attempts', sa.Integer(), nullable=False),
        sa.Column('next_attempt_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
        sa.Column('lease_owner', sa.String(length=64), nullable=True),
        sa.Column('lease_expires_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('callback_id', sa.String(length=64), nullable=True),
        sa.Column('provider', sa.String(length=40), nullable=True),
        sa.Column('message', sa.Text(), nullable=True),
        sa.Column('result', postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.ForeignKeyConstraint(['run_id'], ['enrichment_runs.id'], name=op.f('fk_enrichment_run_rows_run_id_enrichment_runs'), ondelete='CASCADE'),
        sa.ForeignKeyConstraint(['workspace_id'], ['workspaces.id'], name=op.f('fk_enrichment_run_rows_workspace_id_workspaces'), ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('run_id', 'row_id', name='pk_enrichment_run_rows'),
        sa.UniqueConstraint('callback_id', name=op.f('uq_enrichment_run_rows_callback_id')),
    )
    op.create_index(op.f('ix_enrichment_run_rows_workspace_id'), 'enrichment_run_rows', ['workspace_id'], unique=False)
    op.create_index('ix_enrichment_run_rows_claim', 'enrichment_run_rows', ['run_id', 'next_attempt_at', 'row_id'],
                    unique=False, postgresql_where=sa.text("status = 'pending'"))
    op.create_index('ix_enrichment_run_rows_lease', 'enrichment_run_rows', ['lease_expires_at'], unique=False,
                    postgresql_where=sa.text("status IN ('leased','awaiting_callback')"))

    op.create_table(
        'enrichment_attempts',
        sa.Column('id', sa.BigInteger(), nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
        sa.Column('workspace_id', sa.BigInteger(), nullable=False),
        sa.Column('run_id', sa.BigInteger(), nullable=True),
        sa.Column('row_id', sa.BigInteger(), nullable=False),
        sa.Column('column_id', sa.BigInteger(), nullable=True),
        sa.Column('provider', sa.String(length=40), nullable=False),
        sa.Column('operation', sa.String(length=80), nullable=False),
        sa.Column('step_index', sa.Integer(), nullable=False),
        sa.Column('outcome', sa.String(length=32), nullable=False),
        sa.Column('http_status', sa.Integer(), nullable=True),
        sa.Column('latency_ms', sa.Integer(), nullable=False),
        sa.Column('cost', sa.Integer(), nullable=False),
        sa.Column('key_source', sa.String(length=16), nullable=False),
        sa.Column('cached', sa.Boolean(), nullable=False),
        sa.Column('message', sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(['column_id'], ['table_columns.id'], name=op.f('fk_enrichment_attempts_column_id_table_columns'), ondelete='CASCADE'),
        sa.ForeignKeyConstraint(['run_id'], ['enrichment_runs.id'], name=op.f('fk_enrichment_attempts_run_id_enrichment_runs'), ondelete='CASCADE'),
        sa.ForeignKeyConstraint(['workspace_id'], ['workspaces.id'], name=op.f('fk_enrichment_attempts_workspace_id_workspaces'), ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_enrichment_attempts')),
    )
    op.create_index(op.f('ix_enrichment_attempts_workspace_id'), 'enrichment_attempts', ['workspace_id'], unique=False)
    op.create_index('ix_enrichment_attempts_run_row', 'enrichment_attempts', ['run_id', 'row_id'], unique=False)
    op.create_index('ix_enrichment_attempts_column_row', 'enrichment_attempts', ['column_id', 'row_id'], unique=False)

    op.create_table(
        'enrichment_cache',
        sa.Column('workspace_id', sa.BigInteger(), nullable=False),
        sa.Column('operation', sa.String(length=80), nullable=False),
        sa.Column('input_hash', sa.String(length=64), nullable=False),
        sa.Column('outcome', sa.String(length=32), nullable=False),
        sa.Column('values', postgresql.JSONB(astext_type=sa.Text()), server_default=sa.text("'{}'::jsonb"), nullable=False),
        sa.Column('expires_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
        sa.ForeignKeyConstraint(['workspace_id'], ['workspaces.id'], name=op.f('fk_enrichment_cache_workspace_id_workspaces'), ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('workspace_id', 'operation', 'input_hash', name='pk_enrichment_cache'),
    )
    op.create_index('ix_enrichment_cache_expires_at', 'enrichment_cache', ['expires_at'], unique=False)


def downgrade():
    op.drop_index('ix_enrichment_cache_expires_at', table_name='enrichment_cache')
    op.drop_table('enrichment_cache')
    op.drop_index('ix_enrichment_attempts_column_row', table_name='enrichment_attempts')
    op.drop_index('ix_enrichment_attempts_run_row', table_name='enrichment_attempts')
    op.drop_index(op.f('ix_enrichment_attempts_workspace_id'), table_name='enrichment_attempts')
    op.drop_table('enrichment_attempts')
    op.drop_index('ix_enrichment_run_rows_lease', table_name='enrichment_run_rows',
                  postgresql_where=sa.text("status IN ('leased','awaiting_callback')"))
    op.drop_index('ix_enrichment_run_rows_claim', table_name='enrichment_run_rows',
                  postgresql_where=sa.text("status = 'pending'"))
    op.drop_index(op.f('ix_enrichment_run_rows_workspace_id'), table_name='enrichment_run_rows')
    op.drop_table('enrichment_run_rows')
    op.drop_index('ix_enrichment_runs_active', table_name='enrichment_runs',
                  postgresql_where=sa.text("status IN ('queued','running','paused')"))
    op.drop_index('ix_enrichment_runs_column_id', table_name='enrichment_runs')
    op.drop_index('ix_enrichment_runs_workspace_created', table_name='enrichment_runs')
    op.drop_index(op.f('ix_enrichment_runs_workspace_id'), table_name='enrichment_runs')
    op.drop_table('enrichment_runs')
