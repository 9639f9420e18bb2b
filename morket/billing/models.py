"""Billing state per workspace, the Stripe events processed, and what each payment granted.

- ``billing_accounts``: one row per workspace that ever reached billing: its plan, its one Stripe
  customer, its subscription as last read from Stripe, the grace period after a failed renewal,
  credits owed after a clawback the balance could not cover (``credit_shortfall``: it blocks
  runs), and the auto top-up settings.
- ``billing_events``: every Stripe event id seen, written in the transaction of its effects
  (``status = processed``), so an event is applied exactly once however often Stripe sends it. A
  delivery whose handling failed is recorded as ``failed`` in a transaction of its own, with the
  error, and is applied when Stripe retries. Its workspace may be unknown (an event for a
  customer Morket never created), so ``workspace_id`` may be NULL: this is the platform's record
  of Stripe's event stream, read by the admin console, not a tenant's data.
- ``billing_purchases``: what one payment granted (a plan period's allowance or a credit pack),
  with its payment intent, so a refund or a dispute claws back exactly its share, once.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Boolean, CheckConstraint, DateTime, ForeignKey, Integer, String, Text, func
from sqlalchemy.orm import Mapped, mapped_column

from morket.core.db import IdMixin, TimestampMixin, utcnow
from morket.extensions import db

STRIPE_ID_MAX = 255
EVENT_STATUSES = ("processed", "failed", "ignored")
PURCHASE_KINDS = ("plan", "pack")


class BillingAccount(IdMixin, TimestampMixin, db.Model):
    """A workspace's plan and Stripe ids; the plan is what Stripe's subscription says, never the browser."""

    __tablename__ = "billing_accounts"
    __table_args__ = (
        CheckConstraint("credit_shortfall >= 0", name="shortfall_not_negative"),
        CheckConstraint("auto_topup_threshold IS NULL OR auto_topup_threshold >= 0", name="threshold_not_negative"),
    )

    workspace_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("workspaces.id", ondelete="CASCADE"), nullable=False, unique=True
    )
    plan: Mapped[str] = mapped_column(String(20), nullable=False, default="free")
    stripe_customer_id: Mapped[str | None] = mapped_column(String(STRIPE_ID_MAX), unique=True)
    stripe_subscription_id: Mapped[str | None] = mapped_column(String(STRIPE_ID_MAX))
    subscription_status: Mapped[str | None] = mapped_column(String(32))
    current_period_start: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    current_period_end: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    cancel_at_period_end: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    # A failed renewal: the plan holds until grace_until, then the workspace is on the free plan.
    grace_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    grace_invoice_id: Mapped[str | None] = mapped_column(String(STRIPE_ID_MAX))
    # Credits a refund or dispute took back that the balance did not hold; runs wait until repaid.
    credit_shortfall: Mapped[int] = mapped_column(BigInteger, nullable=False, default=0)
    auto_topup_threshold: Mapped[int | None] = mapped_column(Integer)
    auto_topup_pack: Mapped[str | None] = mapped_column(String(20))
    # Set when a top-up was bought for the current crossing; cleared once the balance is above again.
    auto_topup_spent: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    last_topup_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), default=utcnow, onupdate=utcnow, nullable=False
    )


class BillingEvent(IdMixin, db.Model):
    """One Stripe event id: processed once (with its effects) or failed (retried by Stripe)."""

    __tablename__ = "billing_events"
    __table_args__ = (CheckConstraint(f"status IN ({', '.join(repr(s) for s in EVENT_STATUSES)})", name="status"),)

    stripe_event_id: Mapped[str] = mapped_column(String(STRIPE_ID_MAX), nullable=False, unique=True)
    type: Mapped[str] = mapped_column(String(80), nullable=False)
    workspace_id: Mapped[int | None] = mapped_column(
        BigInteger, ForeignKey("workspaces.id", ondelete="SET NULL"), index=True
    )
    status: Mapped[str] = mapped_column(String(16), nullable=False)
    attempts: Mapped[int] = mapped_column(Integer, nullable=False, default=1)
    error: Mapped[str | None] = mapped_column(Text)
    summary: Mapped[str] = mapped_column(String(300), nullable=False, default="")
    received_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), default=utcnow, nullable=False
    )
    processed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class BillingPurchase(IdMixin, TimestampMixin, db.Model):
    """Credits one payment granted: a plan period's allowance (an invoice) or a credit pack (a checkout)."""

    __tablename__ = "billing_purchases"
    __table_args__ = (
        CheckConstraint(f"kind IN ({', '.join(repr(k) for k in PURCHASE_KINDS)})", name="kind"),
        CheckConstraint("clawed_back >= 0 AND clawed_back <= credits", name="clawed_back_within"),
    )

    workspace_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("workspaces.id", ondelete="CASCADE"), nullable=False, index=True
    )
    kind: Mapped[str] = mapped_column(String(8), nullable=False)
    # The invoice (plan) or checkout session (pack) that paid: unique, the grant's idempotency.
    stripe_ref: Mapped[str] = mapped_column(String(STRIPE_ID_MAX), nullable=False, unique=True)
    payment_intent: Mapped[str | None] = mapped_column(String(STRIPE_ID_MAX), index=True)
    item: Mapped[str] = mapped_column(String(20), nullable=False)  # the plan or pack key
    credits: Mapped[int] = mapped_column(BigInteger, nullable=False)
    amount_cents: Mapped[int] = mapped_column(BigInteger, nullable=False, default=0)
    clawed_back: Mapped[int] = mapped_column(BigInteger, nullable=False, default=0)
