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
- ``check`` starts right after the debit that takes the balance below the threshold: credits
  calls ``balance_lowered`` (registered with ``credits.service.on_balance_lowered``) in the
  charging transaction; a crossing queues ``tasks.check_auto_topup`` once that transaction
  commits (nothing when it rolls back). The thresholds are cached per process for
  ``SETTING_TTL`` seconds, so the charging path adds no statement; a setting changed in another
  process, or a Redis outage, is caught by the periodic job (every minute) instead.
- The charge is an off-session PaymentIntent of the customer's saved card. Its credits are
  granted by the webhook (``payment_intent.succeeded``), like any pack, never here; a decline is
  reported by ``payment_intent.payment_failed``, which the billing page shows and which emails
  the owners and billing admins. A decline keeps the crossing spent (no second charge of a card
  that was just declined); Stripe being unreachable releases it for the next check.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import stripe
from redis.exceptions import RedisError
from sqlalchemy import event, select, text
from sqlalchemy.orm import Session

from morket.billing import plans
from morket.billing.models import BillingAccount, BillingEvent
from morket.billing.service import ensure_account, get_account, stripe_client, stripe_failed
from morket.core.audit import record_audit
from morket.core.db import utcnow
from morket.core.errors import ValidationFailed
from morket.core.jobs import enqueue_now
from morket.core.types import Actor, Workspace
from morket.credits import service as credits
from morket.extensions import db

KIND = "auto_topup"
EVERY = timedelta(days=1)
THRESHOLD_MAX = 10_000_000
SUMMARY_PREFIX = "Auto top-up"
EVENT_TYPES = ("payment_intent.succeeded", "payment_intent.payment_failed")
SETTING_TTL = 30.0  # seconds a process trusts its copy of a workspace's threshold
CHECK_JOB = "morket.billing.tasks.check_auto_topup"
_DUE = "morket_topup_due"  # session.info: workspaces whose balance crossed their threshold

log = logging.getLogger("morket.billing")


def configure(workspace: Workspace, actor: Actor | None, *, pack_key: str | None, threshold: Any) -> BillingAccount:
    """Turn auto top-up on (a pack and a threshold) or off (no pack); the caller commits."""
    account = ensure_account(workspace.id, lock=True)
    if not pack_key:
        account.auto_topup_pack = None
        account.auto_topup_threshold = None
        account.auto_topup_spent = False
        _remember(workspace.id, None)
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
    _remember(workspace.id, limit)
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


# Right after the crossing debit ----------------------------------------------------------------

# workspace id -> (threshold, or None when auto top-up is off; when it was read)
_THRESHOLDS: dict[int, tuple[int | None, float]] = {}


_THRESHOLDS_KEPT = 10_000  # beyond this many workspaces, the expired entries are dropped


def _remember(workspace_id: int, threshold: int | None) -> None:
    now = time.monotonic()
    if len(_THRESHOLDS) >= _THRESHOLDS_KEPT:
        for key in [k for k, (_, at) in _THRESHOLDS.items() if now - at >= SETTING_TTL]:
            del _THRESHOLDS[key]
    _THRESHOLDS[workspace_id] = (threshold, now)


def _threshold(workspace_id: int) -> int | None:
    """The workspace's auto top-up threshold (None: off), read at most once per ``SETTING_TTL``."""
    found = _THRESHOLDS.get(workspace_id)
    if found is not None and time.monotonic() - found[1] < SETTING_TTL:
        return found[0]
    row = db.session.execute(
        select(BillingAccount.auto_topup_pack, BillingAccount.auto_topup_threshold).where(
            BillingAccount.workspace_id == workspace_id
        )
    ).first()
    threshold = row.auto_topup_threshold if row is not None and row.auto_topup_pack else None
    _remember(workspace_id, threshold)
    return threshold


def balance_lowered(workspace_id: int, before: int, after: int) -> None:
    """Credits' hook: a debit that takes the balance from at or above the threshold to below it
    queues a check for after the commit (``check`` decides; the periodic job is the safety net)."""
    threshold = _threshold(workspace_id)
    if threshold is not None and after < threshold <= before:
        db.session.info.setdefault(_DUE, set()).add(workspace_id)


@event.listens_for(Session, "after_commit")
def _queue_checks(session: Session) -> None:
    due = session.info.pop(_DUE, None)
    for workspace_id in sorted(due or ()):
        try:
            enqueue_now(CHECK_JOB, workspace_id, job_id=f"auto-topup-{workspace_id}")
        except RedisError:
            log.warning("auto top-up check not queued; the periodic job will run it", extra={"workspace": workspace_id})


@event.listens_for(Session, "after_rollback")
def _forget_checks(session: Session) -> None:
    session.info.pop(_DUE, None)
