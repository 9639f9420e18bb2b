"""undo steps

Revision ID: 20261125_21
Revises: 20261125_20
Create Date: 2026-11-25 20:55:00.000000

Undo and redo steps of grid changes, per user and per table (morket.tables.undo).
"""
from alembic import op
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql


# revision identifiers, used by Alembic.
revision = '20261125_21'
down_revision = '20261125_20'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        'undo_steps',
        sa.Column('table_id', sa.BigInteger(), nullable=False),
        sa.Column('user_id', sa.BigInteger(), nullable=False),
        sa.Column('kind', sa.String(length=40), nullable=False),
        sa.Column('forward', postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column('backward', postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column('undone', sa.Boolean(), nullable=False),
        sa.Column('id', sa.BigInteger(), nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
        sa.Column('workspace_id', sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(['table_id'], ['tables.id'], name=op.f('fk_undo_steps_table_id_tables'), ondelete='CASCADE'),
        sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_undo_steps_user_id_users'), ondelete='CASCADE'),
        sa.ForeignKeyConstraint(['workspace_id'], ['workspaces.id'], name=op.f('fk_undo_steps_workspace_id_workspaces'), ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_undo_steps')),
    )
    op.create_index(op.f('ix_undo_steps_workspace_id'), 'undo_steps', ['workspace_id'], unique=False)
    op.create_index('ix_undo_steps_table_user', 'undo_steps', ['table_id', 'user_id', 'id'], unique=False)


def downgrade():
    op.drop_index('ix_undo_steps_table_user', table_name='undo_steps')
    op.drop_index(op.f('ix_undo_steps_workspace_id'), table_name='undo_steps')
    op.drop_table('undo_steps')
