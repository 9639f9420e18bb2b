"""tables columns views and user schema

Revision ID: 20261125_20
Revises: 20261125_01
Create Date: 2026-11-25 20:13:32.707604

User tables (ut.t_<id>) and view orders (ut.o_<table>_<view>) live in the ``ut`` schema, which
Alembic never inspects: they are created and dropped by morket.tables.storage only.
"""
from alembic import op
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql


# revision identifiers, used by Alembic.
revision = '20261125_20'
down_revision = '20261125_01'
branch_labels = None
depends_on = None


def upgrade():
    op.execute("CREATE SCHEMA IF NOT EXISTS ut")
    op.create_table(
        'tables',
        sa.Column('name', sa.String(length=120), nullable=False),
        sa.Column('folder', sa.String(length=120), nullable=True),
        sa.Column('storage_name', sa.String(length=63), nullable=False),
        sa.Column('version', sa.Integer(), nullable=False),
        sa.Column('row_count', sa.BigInteger(), nullable=False),
        sa.Column('pos_base', sa.BigInteger(), server_default=sa.text('0'), nullable=False),
        sa.Column('pos_gaps', postgresql.ARRAY(sa.BigInteger()), server_default=sa.text("'{}'::bigint[]"), nullable=False),
        sa.Column('created_by_id', sa.BigInteger(), nullable=True),
        sa.Column('id', sa.BigInteger(), nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
        sa.Column('workspace_id', sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(['created_by_id'], ['users.id'], name=op.f('fk_tables_created_by_id_users'), ondelete='SET NULL'),
        sa.ForeignKeyConstraint(['workspace_id'], ['workspaces.id'], name=op.f('fk_tables_workspace_id_workspaces'), ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_tables')),
    )
    op.create_index(op.f('ix_tables_workspace_id'), 'tables', ['workspace_id'], unique=False)
    op.create_index('ix_tables_workspace_folder', 'tables', ['workspace_id', 'folder'], unique=False)

    op.create_table(
        'table_columns',
        sa.Column('table_id', sa.BigInteger(), nullable=False),
        sa.Column('name', sa.String(length=120), nullable=False),
        sa.Column('type', sa.String(length=32), nullable=False),
        sa.Column('config', postgresql.JSONB(astext_type=sa.Text()), server_default=sa.text("'{}'::jsonb"), nullable=False),
        sa.Column('position', sa.Integer(), nullable=False),
        sa.Column('hidden', sa.Boolean(), nullable=False),
        sa.Column('width', sa.Integer(), nullable=False),
        sa.Column('deleted_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('id', sa.BigInteger(), nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
        sa.Column('workspace_id', sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(['table_id'], ['tables.id'], name=op.f('fk_table_columns_table_id_tables'), ondelete='CASCADE'),
        sa.ForeignKeyConstraint(['workspace_id'], ['workspaces.id'], name=op.f('fk_table_columns_workspace_id_workspaces'), ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_table_columns')),
    )
    op.create_index(op.f('ix_table_columns_workspace_id'), 'table_columns', ['workspace_id'], unique=False)
    op.create_index('ix_table_columns_table_position', 'table_columns', ['table_id', 'position'], unique=False)

    op.create_table(
        'table_views',
        sa.Column('table_id', sa.BigInteger(), nullable=False),
        sa.Column('name', sa.String(length=120), nullable=False),
        sa.Column('sort', postgresql.JSONB(astext_type=sa.Text()), server_default=sa.text("'[]'::jsonb"), nullable=False),
        sa.Column('filters', postgresql.JSONB(astext_type=sa.Text()), server_default=sa.text("'{}'::jsonb"), nullable=False),
        sa.Column('hidden_column_ids', postgresql.JSONB(astext_type=sa.Text()), server_default=sa.text("'[]'::jsonb"), nullable=False),
        sa.Column('frozen_count', sa.Integer(), nullable=False),
        sa.Column('widths', postgresql.JSONB(astext_type=sa.Text()), server_default=sa.text("'{}'::jsonb"), nullable=False),
        sa.Column('order_stale', sa.Boolean(), nullable=False),
        sa.Column('order_size', sa.BigInteger(), nullable=True),
        sa.Column('rank_base', sa.BigInteger(), server_default=sa.text('1'), nullable=False),
        sa.Column('rank_gaps', postgresql.ARRAY(sa.BigInteger()), server_default=sa.text("'{}'::bigint[]"), nullable=False),
        sa.Column('id', sa.BigInteger(), nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
        sa.Column('workspace_id', sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(['table_id'], ['tables.id'], name=op.f('fk_table_views_table_id_tables'), ondelete='CASCADE'),
        sa.ForeignKeyConstraint(['workspace_id'], ['workspaces.id'], name=op.f('fk_table_views_workspace_id_workspaces'), ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_table_views')),
    )
    op.create_index(op.f('ix_table_views_workspace_id'), 'table_views', ['workspace_id'], unique=False)
    op.create_index('ix_table_views_table_id', 'table_views', ['table_id'], unique=False)


def downgrade():
    op.drop_index('ix_table_views_table_id', table_name='table_views')
    op.drop_index(op.f('ix_table_views_workspace_id'), table_name='table_views')
    op.drop_table('table_views')
    op.drop_index('ix_table_columns_table_position', table_name='table_columns')
    op.drop_index(op.f('ix_table_columns_workspace_id'), table_name='table_columns')
    op.drop_table('table_columns')
    op.drop_index('ix_tables_workspace_folder', table_name='tables')
    op.drop_index(op.f('ix_tables_workspace_id'), table_name='tables')
    op.drop_table('tables')
    op.execute("DROP SCHEMA IF EXISTS ut CASCADE")
