"""credit ledger and balances

Revision ID: 20261126_41
Revises: 20261126_40
Create Date: 2026-11-26 02:00:00.000000
"""

from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = "20261126_41"
down_revision = "20261126_40"
branch_labels = None
depends_on = None

# The ledger is append-only. Deleting its rows is allowed only as the cascade of deleting the
# workspace itself (by then the workspace row is gone); every other UPDATE or DELETE is refused.
APPEND_ONLY = """
CREATE FUNCTION credit_ledger_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' AND NOT EXISTS (SELECT 1 FROM workspaces WHERE id = OLD.workspace_id) THEN
        RETURN OLD;
    END IF;
    RAISE EXCEPTION 'credit_ledger is append-only: % refused on entry %', TG_OP, OLD.id
        USING ERRCODE = 'restrict_violation';
END
$$;
CREATE TRIGGER credit_ledger_append_only BEFORE UPDATE OR DELETE ON credit_ledger
    FOR EACH ROW EXECUTE FUNCTION credit_ledger_append_only();
"""


def upgrade():
    op.create_table(
        "credit_ledger",
        sa.Column("id", sa.BigInteger(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("workspace_id", sa.BigInteger(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.Column("balance_after", sa.BigInteger(), nullable=False),
        sa.Column("idempotency_key", sa.String(length=200), nullable=False),
        sa.Column("run_id", sa.BigInteger(), nullable=True),
        sa.Column("row_id", sa.BigInteger(), nullable=True),
        sa.Column("column_id", sa.BigInteger(), nullable=True),
        sa.Column("attempt_id", sa.BigInteger(), nullable=True),
        sa.Column("provider", sa.String(length=40), nullable=True),
        sa.Column("operation", sa.String(length=80), nullable=True),
        sa.Column("key_source", sa.String(length=16), nullable=True),
        sa.Column("refers_to_id", sa.BigInteger(), nullable=True),
        sa.Column("actor_id", sa.BigInteger(), nullable=True),
        sa.Column("note", sa.Text(), nullable=False),
        sa.CheckConstraint(
            "kind IN ('grant', 'debit', 'refund', 'adjustment', 'usage')", name=op.f("ck_credit_ledger_kind")
        ),
        sa.CheckConstraint("balance_after >= 0", name=op.f("ck_credit_ledger_balance_after_not_negative")),
        sa.ForeignKeyConstraint(
            ["refers_to_id"], ["credit_ledger.id"], name=op.f("fk_credit_ledger_refers_to_id_credit_ledger")
        ),
        sa.ForeignKeyConstraint(
            ["workspace_id"],
            ["workspaces.id"],
            name=op.f("fk_credit_ledger_workspace_id_workspaces"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_credit_ledger")),
        sa.UniqueConstraint(
            "workspace_id", "idempotency_key", name=op.f("uq_credit_ledger_workspace_id_idempotency_key")
        ),
    )
    op.create_index(op.f("ix_credit_ledger_workspace_id"), "credit_ledger", ["workspace_id"], unique=False)
    op.create_index("ix_credit_ledger_workspace_history", "credit_ledger", ["workspace_id", "id"], unique=False)
    op.create_index("ix_credit_ledger_workspace_kind", "credit_ledger", ["workspace_id", "kind", "id"], unique=False)
    op.create_index(
        "ix_credit_ledger_refers_to_id",
        "credit_ledger",
        ["refers_to_id"],
        unique=False,
        postgresql_where="refers_to_id IS NOT NULL",
    )
    op.execute(APPEND_ONLY)
    op.create_table(
        "credit_balances",
        sa.Column("workspace_id", sa.BigInteger(), nullable=False),
        sa.Column("balance", sa.BigInteger(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.CheckConstraint("balance >= 0", name=op.f("ck_credit_balances_balance_not_negative")),
        sa.ForeignKeyConstraint(
            ["workspace_id"],
            ["workspaces.id"],
            name=op.f("fk_credit_balances_workspace_id_workspaces"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("workspace_id", name=op.f("pk_credit_balances")),
    )


def downgrade():
    op.drop_table("credit_balances")
    op.execute("DROP TRIGGER credit_ledger_append_only ON credit_ledger")
    op.execute("DROP FUNCTION credit_ledger_append_only()")
    op.drop_index("ix_credit_ledger_refers_to_id", table_name="credit_ledger")
    op.drop_index("ix_credit_ledger_workspace_kind", table_name="credit_ledger")
    op.drop_index("ix_credit_ledger_workspace_history", table_name="credit_ledger")
    op.drop_index(op.f("ix_credit_ledger_workspace_id"), table_name="credit_ledger")
    op.drop_table("credit_ledger")
