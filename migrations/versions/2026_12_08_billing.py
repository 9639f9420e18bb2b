"""Billing: Stripe customers, subscriptions, processed events and plan state

Revision ID: 20261207_59
Revises: 20261207_58
Create Date: 2026-12-08 00:00:00.000000

One billing account per workspace (plan, Stripe ids, grace period, credits owed after a
clawback, auto top-up), every Stripe event id processed (exactly once, with its effects), and
what each payment granted (for refunds and disputes).
"""

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = "20261207_59"
down_revision = "20261207_58"
branch_labels = None
depends_on = None


def _workspace_fk(table: str, ondelete: str = "CASCADE") -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        ["workspace_id"], ["workspaces.id"], name=op.f(f"fk_{table}_workspace_id_workspaces"), ondelete=ondelete
    )


def upgrade():
    op.create_table(
        "billing_accounts",
        sa.Column("id", sa.BigInteger(), nullable=False),
        sa.Column("workspace_id", sa.BigInteger(), nullable=False),
        sa.Column("plan", sa.String(length=20), nullable=False),
        sa.Column("stripe_customer_id", sa.String(length=255), nullable=True),
        sa.Column("stripe_subscription_id", sa.String(length=255), nullable=True),
        sa.Column("subscription_status", sa.String(length=32), nullable=True),
        sa.Column("current_period_start", sa.DateTime(timezone=True), nullable=True),
        sa.Column("current_period_end", sa.DateTime(timezone=True), nullable=True),
        sa.Column("cancel_at_period_end", sa.Boolean(), nullable=False),
        sa.Column("grace_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("grace_invoice_id", sa.String(length=255), nullable=True),
        sa.Column("credit_shortfall", sa.BigInteger(), nullable=False),
        sa.Column("auto_topup_threshold", sa.Integer(), nullable=True),
        sa.Column("auto_topup_pack", sa.String(length=20), nullable=True),
        sa.Column("auto_topup_spent", sa.Boolean(), nullable=False),
        sa.Column("last_topup_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.CheckConstraint("credit_shortfall >= 0", name=op.f("ck_billing_accounts_shortfall_not_negative")),
        sa.CheckConstraint(
            "auto_topup_threshold IS NULL OR auto_topup_threshold >= 0",
            name=op.f("ck_billing_accounts_threshold_not_negative"),
        ),
        _workspace_fk("billing_accounts"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_billing_accounts")),
        sa.UniqueConstraint("workspace_id", name=op.f("uq_billing_accounts_workspace_id")),
        sa.UniqueConstraint("stripe_customer_id", name=op.f("uq_billing_accounts_stripe_customer_id")),
    )

    op.create_table(
        "billing_events",
        sa.Column("id", sa.BigInteger(), nullable=False),
        sa.Column("stripe_event_id", sa.String(length=255), nullable=False),
        sa.Column("type", sa.String(length=80), nullable=False),
        sa.Column("workspace_id", sa.BigInteger(), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("summary", sa.String(length=300), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("processed_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint("status IN ('processed', 'failed', 'ignored')", name=op.f("ck_billing_events_status")),
        _workspace_fk("billing_events", "SET NULL"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_billing_events")),
        sa.UniqueConstraint("stripe_event_id", name=op.f("uq_billing_events_stripe_event_id")),
    )
    op.create_index(op.f("ix_billing_events_workspace_id"), "billing_events", ["workspace_id"], unique=False)

    op.create_table(
        "billing_purchases",
        sa.Column("id", sa.BigInteger(), nullable=False),
        sa.Column("workspace_id", sa.BigInteger(), nullable=False),
        sa.Column("kind", sa.String(length=8), nullable=False),
        sa.Column("stripe_ref", sa.String(length=255), nullable=False),
        sa.Column("payment_intent", sa.String(length=255), nullable=True),
        sa.Column("item", sa.String(length=20), nullable=False),
        sa.Column("credits", sa.BigInteger(), nullable=False),
        sa.Column("amount_cents", sa.BigInteger(), nullable=False),
        sa.Column("clawed_back", sa.BigInteger(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.CheckConstraint("kind IN ('plan', 'pack')", name=op.f("ck_billing_purchases_kind")),
        sa.CheckConstraint(
            "clawed_back >= 0 AND clawed_back <= credits", name=op.f("ck_billing_purchases_clawed_back_within")
        ),
        _workspace_fk("billing_purchases"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_billing_purchases")),
        sa.UniqueConstraint("stripe_ref", name=op.f("uq_billing_purchases_stripe_ref")),
    )
    op.create_index(op.f("ix_billing_purchases_workspace_id"), "billing_purchases", ["workspace_id"], unique=False)
    op.create_index(
        op.f("ix_billing_purchases_payment_intent"), "billing_purchases", ["payment_intent"], unique=False
    )


def downgrade():
    op.drop_index(op.f("ix_billing_purchases_payment_intent"), table_name="billing_purchases")
    op.drop_index(op.f("ix_billing_purchases_workspace_id"), table_name="billing_purchases")
    op.drop_table("billing_purchases")
    op.drop_index(op.f("ix_billing_events_workspace_id"), table_name="billing_events")
    op.drop_table("billing_events")
    op.drop_table("billing_accounts")
