"""Auto top-up: buy a credit pack off-session when a workspace's balance falls below its threshold.

The setting (``auto_topup_pack`` and ``auto_topup_threshold`` on the billing account) is made by
the people who manage billing. ``check`` runs for one workspace (the periodic job runs it for
every workspace with the setting whose balance is below its threshold):

- The account row is locked; nothing happens when the balance is at or above the threshold (and
  the crossing is over: ``auto_topup_spent`` is cleared), when this crossing was bought already
  (``auto_topup_spent``) or when a top-up was started in the last 24 hours (``last_topup_at``).
- Otherwise the crossing is claimed (``auto_topup_spent``, ``last_topup_at``) and committed
  before Stripe is called, so two checks racing on one crossing buy once: the second waits on
  the row lock and finds it spent.
- The crossing's id is the ledger entry that took the balance below the threshold (the first
  entry under it after the last one at or above it): the same for every check of one crossing,
  it names the PaymentIntent's idempotency key and metadata, so even a retried call charges once.
- The charge is an off-session PaymentIntent of the customer's saved card. Its credits are
  granted by the webhook (``payment_intent.succeeded``), like any pack, never here; a decline is
  reported by ``payment_intent.payment_failed``, which the billing page shows and which emails
  the owners and billing admins. A decline keeps the crossing spent (no second charge of a card
  that was just declined); Stripe being unreachable releases it for the next check.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import stripe
from sqlalchemy import select, text

from morket.billing import plans
from morket.billing.models import BillingAccount, BillingEvent
from morket.billing.service import ensure_account, get_account, stripe_client, stripe_failed
from morket.core.audit import record_audit
from morket.core.db import utcnow
from morket.core.errors import ValidationFailed
from morket.core.types import Actor, Workspace
from morket.credits import service as credits
from morket.extensions import db

KIND = "auto_topup"
EVERY = timedelta(days=1)
THRESHOLD_MAX = 10_000_000
SUMMARY_PREFIX = "Auto top-up"
EVENT_TYPES = ("payment_intent.succeeded", "payment_intent.payment_failed")


def configure(workspace: Workspace, actor: Actor | None, *, pack_key: str | None, threshold: Any) -> BillingAccount:
    """Turn auto top-up on (a pack and a threshold) or off (no pack); the caller commits."""
    account = ensure_account(workspace.id, lock=True)
    if not pack_key:
        account.auto_topup_pack = None
        account.auto_topup_threshold = None
        account.auto_topup_spent = False
        record_audit(workspace, actor, "billing.auto_topup_off", f"workspace:{workspace.id}")
        db.session.flush()
        return account
    pack = plans.PACKS.get(pack_key)
    if pack is None:
        raise ValidationFailed("There is no such credit pack.", fields={"pack": ["unknown pack"]})
    try:
        limit = int(str(threshold).replace(",", "").strip())
    except ValueError:
        limit = -1
    if not 0 <= limit <= THRESHOLD_MAX:
        raise ValidationFailed(
            f"The threshold is a number of credits from 0 to {THRESHOLD_MAX:,}.", fields={"threshold": ["invalid"]}
        )
    if not account.stripe_customer_id:
        raise ValidationFailed(
            "Buy a plan or a credit pack once first: auto top-up charges the card Stripe keeps from it.",
            fields={"pack": ["no card"]},
        )
    if (account.auto_topup_pack, account.auto_topup_threshold) != (pack.key, limit):
        account.auto_topup_spent = False
    account.auto_topup_pack = pack.key
    account.auto_topup_threshold = limit
    record_audit(workspace, actor, "billing.auto_topup_on", f"workspace:{workspace.id}", pack=pack.key,
                 threshold=limit)  # fmt: skip
    db.session.flush()
    return account


def crossing_id(workspace_id: int, threshold: int) -> int | None:
    """The ledger entry that took the balance below ``threshold`` this time (None: no entry did)."""
    return db.session.scalar(
        text(
            "SELECT min(id) FROM credit_ledger WHERE workspace_id = :w AND balance_after < :t"
            " AND id > coalesce((SELECT max(id) FROM credit_ledger"
            " WHERE workspace_id = :w AND balance_after >= :t), 0)"
        ),
        {"w": workspace_id, "t": threshold},
    )


@dataclass(frozen=True)
class Check:
    """What one check did: ``off``, ``above``, ``spent``, ``daily``, ``charged`` or ``declined``."""

    result: str
    payment_intent: str | None = None
    message: str = ""


def check(workspace_id: int) -> Check:
    """Buy the workspace's top-up pack if its balance is below the threshold; commits its claim first."""
    account = get_account(workspace_id, lock=True)
    if account is None or not account.auto_topup_pack or account.auto_topup_threshold is None:
        db.session.commit()  # nothing changed: ends the transaction and its row lock
        return Check("off")
    pack = plans.PACKS.get(account.auto_topup_pack)
    if pack is None or not account.stripe_customer_id:
        db.session.commit()  # nothing changed: ends the transaction and its row lock
        return Check("off")
    threshold = account.auto_topup_threshold
    if credits.balance(workspace_id) >= threshold:
        account.auto_topup_spent = False  # the crossing is over
        db.session.commit()
        return Check("above")
    if account.auto_topup_spent:
        db.session.commit()  # nothing changed: ends the transaction and its row lock
        return Check("spent")
    now = utcnow()
    previous = account.last_topup_at
    if previous is not None and now - previous < EVERY:
        db.session.commit()  # nothing changed: ends the transaction and its row lock
        return Check("daily")
    crossing = crossing_id(workspace_id, threshold) or 0
    account.auto_topup_spent = True
    account.last_topup_at = now
    customer = account.stripe_customer_id
    db.session.commit()  # the claim: a racing check now finds this crossing spent

    try:
        intent = stripe_client().v1.payment_intents.create(
            params={
                "customer": customer,
                "amount": pack.usd * 100,
                "currency": "usd",
                "confirm": True,
                "off_session": True,
                "description": f"Morket auto top-up: {pack.name}",
                "metadata": {
                    "kind": KIND,
                    "workspace_id": str(workspace_id),
                    "pack": pack.key,
                    "crossing": str(crossing),
                },  # fmt: skip
            },
            options={"idempotency_key": f"morket-topup-{workspace_id}-{crossing}"},
        )
    except stripe.CardError as exc:
        return Check("declined", message=str(exc.user_message or "The card was declined."))
    except stripe.StripeError as exc:
        # Nothing was charged: release the crossing for the next check (same key, so at most once).
        again = get_account(workspace_id, lock=True)
        if again is not None:
            again.auto_topup_spent = False
            again.last_topup_at = previous
        db.session.commit()
        raise stripe_failed(exc) from exc
    return Check("charged", payment_intent=intent.id)


def due_workspaces() -> list[int]:
    """Workspaces with auto top-up on whose balance is below the threshold and not bought for yet."""
    rows = db.session.execute(
        text(
            "SELECT a.workspace_id FROM billing_accounts a"
            " LEFT JOIN credit_balances b ON b.workspace_id = a.workspace_id"
            " WHERE a.auto_topup_pack IS NOT NULL AND a.auto_topup_threshold IS NOT NULL"
            " AND (coalesce(b.balance, 0) < a.auto_topup_threshold) <> a.auto_topup_spent"
            " ORDER BY a.workspace_id"
        )
    )
    return [int(row.workspace_id) for row in rows]


def last_result(workspace_id: int) -> BillingEvent | None:
    """The latest auto top-up Stripe reported for the workspace (its summary says how it went)."""
    return db.session.scalar(
        select(BillingEvent)
        .where(
            BillingEvent.workspace_id == workspace_id,
            BillingEvent.type.in_(EVENT_TYPES),
            BillingEvent.summary.startswith(SUMMARY_PREFIX),
        )
        .order_by(BillingEvent.id.desc())
        .limit(1)
    )
