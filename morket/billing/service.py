"""Billing: a workspace's plan and limits, its one Stripe customer, Checkout and the portal, grants
and clawbacks of paid credits.

Nothing here grants credits because a browser came back from Checkout: grants happen only in
``events`` (the webhook), after reading the paid object from Stripe. Grants go through the credit
ledger with the Stripe object as idempotency key, so a second grant of one invoice or one checkout
is a no-op whatever path it comes by. A clawback (refund, dispute) takes what the balance holds as
a ledger entry and records the rest as ``credit_shortfall``, which blocks runs and is repaid first
from the next grant; the balance never goes below zero.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import stripe
from flask import current_app
from sqlalchemy import select, text
from sqlalchemy.dialects.postgresql import insert as pg_insert

from morket.billing import plans
from morket.billing.models import BillingAccount, BillingEvent, BillingPurchase
from morket.core.audit import record_audit
from morket.core.db import utcnow
from morket.core.errors import MorketError, NotFound, ValidationFailed
from morket.core.types import Actor, Workspace
from morket.credits import service as credits
from morket.extensions import db

INVOICE_PAGE = 12
STRIPE_TIMEOUT = 20.0


class BillingUnavailable(MorketError):
    """Stripe is not configured, or could not be reached; nothing was changed."""

    status = 503
    code = "billing_unavailable"


class BillingNotSetUp(MorketError):
    """This server has no Stripe key: nothing can be bought (a state of the server, not an outage)."""

    status = 409
    code = "billing_not_set_up"


class PlanLimit(MorketError):
    """The workspace's plan does not allow this; the message names the plan that does."""

    status = 402
    code = "plan_limit"


# Stripe ---------------------------------------------------------------------------------------


def stripe_client() -> stripe.StripeClient:
    """The Stripe client for the configured key and API base (the sandbox in development and tests).

    One per app, key and base: the HTTP client keeps its connections between calls.
    """
    settings = current_app.config["MORKET"]
    key, base = settings["STRIPE_SECRET_KEY"], settings["STRIPE_API_BASE"]
    if not key:
        raise BillingNotSetUp("Billing is not set up on this Morket server: nothing can be bought here.")
    cache = current_app.extensions.setdefault("morket_stripe", {})
    found = cache.get((key, base))
    if found is None:
        options: dict[str, Any] = {}
        if base:
            options["base_addresses"] = {"api": base, "connect": base, "files": base, "meter_events": base}
        found = stripe.StripeClient(
            key,
            http_client=stripe.new_default_http_client(timeout=STRIPE_TIMEOUT),
            max_network_retries=2,
            **options,
        )
        cache[(key, base)] = found
    return found


def stripe_failed(exc: stripe.StripeError) -> BillingUnavailable:
    """A Stripe error as the error a user sees (the details go to the log, not the page)."""
    current_app.logger.warning(
        "stripe call failed: %s %s", type(exc).__name__, getattr(exc, "user_message", None) or str(exc)[:300]
    )
    return BillingUnavailable("Stripe did not answer as expected; nothing was changed. Try again in a minute.")


def field(obj: Any, *path: str | int) -> Any:
    """Read ``obj[a][b]...`` from a Stripe object or dict, None when any step is missing."""
    for step in path:
        if obj is None:
            return None
        try:
            obj = obj[step]
        except (KeyError, IndexError, TypeError, AttributeError):
            return None
    return obj


def stamp(seconds: Any) -> datetime | None:
    return datetime.fromtimestamp(int(seconds), UTC) if isinstance(seconds, int | float) and seconds else None


# Accounts -------------------------------------------------------------------------------------


def get_account(workspace_id: int, *, lock: bool = False) -> BillingAccount | None:
    stmt = select(BillingAccount).where(BillingAccount.workspace_id == workspace_id)
    if lock:
        stmt = stmt.with_for_update()
    return db.session.scalar(stmt)


def ensure_account(workspace_id: int, *, lock: bool = False) -> BillingAccount:
    """The workspace's billing account, created on the free plan when missing (race-safe)."""
    db.session.execute(
        pg_insert(BillingAccount)
        .values(
            workspace_id=workspace_id,
            plan=plans.FREE,
            cancel_at_period_end=False,
            credit_shortfall=0,
            auto_topup_spent=False,
        )  # fmt: skip
        .on_conflict_do_nothing(index_elements=[BillingAccount.workspace_id])
    )
    account = get_account(workspace_id, lock=lock)
    assert account is not None
    return account


def account_for_customer(customer_id: str | None, *, lock: bool = True) -> BillingAccount | None:
    if not customer_id:
        return None
    stmt = select(BillingAccount).where(BillingAccount.stripe_customer_id == customer_id)
    if lock:
        stmt = stmt.with_for_update()
    return db.session.scalar(stmt)


def effective_plan(account: BillingAccount | None, now: datetime | None = None) -> plans.Plan:
    """The plan whose limits apply now: the free plan without an account or once a grace period ended."""
    if account is None:
        return plans.plan(plans.FREE)
    if account.grace_until is not None and account.grace_until <= (now or utcnow()):
        return plans.plan(plans.FREE)
    return plans.plan(account.plan)


def plan_of(workspace_id: int) -> plans.Plan:
    return effective_plan(get_account(workspace_id))


def ensure_customer(workspace: Workspace, actor: Actor | None) -> BillingAccount:
    """The workspace's one Stripe customer: created once, under the account's row lock."""
    account = ensure_account(workspace.id, lock=True)
    if account.stripe_customer_id:
        return account
    try:
        customer = stripe_client().v1.customers.create(
            params={
                "name": workspace.name,
                "email": actor.email if actor is not None else None,
                "metadata": {"workspace_id": str(workspace.id), "workspace_slug": workspace.slug},
            },
            options={"idempotency_key": f"morket-customer-{workspace.id}"},
        )
    except stripe.StripeError as exc:
        raise stripe_failed(exc) from exc
    account.stripe_customer_id = customer.id
    db.session.flush()
    return account


# Checkout and portal ----------------------------------------------------------------------------


@dataclass(frozen=True)
class CheckoutStart:
    session_id: str
    url: str


def start_checkout(
    workspace: Workspace,
    actor: Actor | None,
    *,
    plan_key: str | None = None,
    pack_key: str | None = None,
    success_url: str,
    cancel_url: str,
) -> CheckoutStart:
    """Open a Stripe Checkout session for a plan (subscription) or a credit pack (one-time payment).

    The session names the workspace (``client_reference_id`` and metadata); what it grants is
    decided by the webhook from the session Stripe reports as paid, never from the redirect.
    """
    if (plan_key is None) == (pack_key is None):
        raise ValidationFailed("Choose a plan or a credit pack.", fields={"plan": ["choose one"]})
    metadata = {"workspace_id": str(workspace.id), "actor_id": str(actor.id) if actor is not None else ""}
    params: dict[str, Any] = {
        "client_reference_id": str(workspace.id),
        "success_url": success_url,
        "cancel_url": cancel_url,
        "metadata": metadata,
    }
    if plan_key is not None:
        chosen = plans.PLANS.get(plan_key)
        if chosen is None or chosen.price_id is None:
            raise ValidationFailed("There is no such paid plan.", fields={"plan": ["unknown plan"]})
        account = get_account(workspace.id)
        if account is not None and account.stripe_subscription_id and account.subscription_status in _LIVE:
            # A second subscription would bill twice: a plan change is made on the one there is.
            raise ValidationFailed(
                f"This workspace has a {plans.plan(account.plan).name} subscription already; "
                "change plans from Stripe's billing portal (Manage).",
                fields={"plan": ["subscribed"]},
            )
        params.update(
            mode="subscription",
            line_items=[{"price": chosen.price_id, "quantity": 1}],
            subscription_data={"metadata": metadata},
        )
        metadata["plan"] = chosen.key
    else:
        pack = plans.PACKS.get(pack_key or "")
        if pack is None:
            raise ValidationFailed("There is no such credit pack.", fields={"pack": ["unknown pack"]})
        params.update(
            mode="payment",
            line_items=[{"price": pack.price_id, "quantity": 1}],
            payment_intent_data={"metadata": metadata},
        )
        metadata["pack"] = pack.key
    account = ensure_customer(workspace, actor)
    params["customer"] = account.stripe_customer_id
    try:
        session = stripe_client().v1.checkout.sessions.create(params=params)
    except stripe.StripeError as exc:
        raise stripe_failed(exc) from exc
    return CheckoutStart(session_id=session.id, url=session.url)


def open_portal(workspace: Workspace, actor: Actor | None, *, return_url: str) -> str:
    """A Stripe customer-portal link (plan changes, cards, invoices, cancelling) for the workspace."""
    account = ensure_customer(workspace, actor)
    try:
        portal = stripe_client().v1.billing_portal.sessions.create(
            params={"customer": account.stripe_customer_id, "return_url": return_url}
        )
    except stripe.StripeError as exc:
        raise stripe_failed(exc) from exc
    return str(portal.url)


@dataclass(frozen=True)
class InvoiceLine:
    id: str
    number: str | None
    status: str | None
    amount_cents: int
    currency: str
    created: datetime | None
    url: str | None


def list_invoices(workspace_id: int) -> list[InvoiceLine]:
    """The workspace's latest invoices, read from Stripe (none before it has a customer)."""
    account = get_account(workspace_id)
    if account is None or not account.stripe_customer_id:
        return []
    try:
        found = stripe_client().v1.invoices.list(params={"customer": account.stripe_customer_id, "limit": INVOICE_PAGE})
    except stripe.StripeError as exc:
        raise stripe_failed(exc) from exc
    return [
        InvoiceLine(
            id=inv.id,
            number=field(inv, "number"),
            status=field(inv, "status"),
            amount_cents=int(field(inv, "amount_paid") or field(inv, "amount_due") or 0),
            currency=str(field(inv, "currency") or "usd"),
            created=stamp(field(inv, "created")),
            url=field(inv, "hosted_invoice_url"),
        )
        for inv in found.data
    ]


# Subscriptions ------------------------------------------------------------------------------------

# Subscription states in which the plan applies (past_due: a renewal failed; the grace period decides).
_LIVE = ("active", "trialing", "past_due")


def apply_subscription(account: BillingAccount, sub: Any) -> plans.Plan:
    """Set the account's plan from a subscription as Stripe reports it now (never from an event's copy)."""
    status = field(sub, "status")
    item = field(sub, "items", "data", 0)
    price = field(item, "price", "id")
    chosen = plans.plan_for_price(price)
    if account.stripe_subscription_id not in (None, sub.id) and status not in _LIVE:
        return plans.plan(account.plan)  # an old subscription ended after a newer one started
    account.stripe_subscription_id = sub.id
    account.subscription_status = status
    account.cancel_at_period_end = bool(field(sub, "cancel_at_period_end"))
    start = field(item, "current_period_start") or field(sub, "current_period_start")
    end = field(item, "current_period_end") or field(sub, "current_period_end")
    account.current_period_start = stamp(start) or account.current_period_start
    account.current_period_end = stamp(end) or account.current_period_end
    if status in _LIVE and chosen is not None:
        account.plan = chosen.key
        if status != "past_due":
            account.grace_until = None
            account.grace_invoice_id = None
    elif status not in _LIVE:
        account.plan = plans.FREE
        account.grace_until = None
        account.grace_invoice_id = None
    db.session.flush()
    return plans.plan(account.plan)


def start_grace(account: BillingAccount, invoice_id: str, now: datetime | None = None) -> bool:
    """Start the grace period for a failed renewal; False when one is running already."""
    if account.grace_until is not None:
        return False
    days = int(current_app.config["MORKET"]["BILLING_GRACE_DAYS"])
    account.grace_until = (now or utcnow()) + timedelta(days=days)
    account.grace_invoice_id = invoice_id
    db.session.flush()
    return True


def end_expired_grace(now: datetime | None = None) -> list[int]:
    """Move every workspace whose grace period ended to the free plan; return their workspace ids."""
    now = now or utcnow()
    accounts = list(
        db.session.scalars(
            select(BillingAccount)
            .where(BillingAccount.grace_until.is_not(None), BillingAccount.grace_until <= now)
            .with_for_update(skip_locked=True)
        )
    )
    for account in accounts:
        account.plan = plans.FREE
        account.grace_until = None
        account.grace_invoice_id = None
    db.session.flush()
    return [account.workspace_id for account in accounts]


# Grants and clawbacks ---------------------------------------------------------------------------


def _record_purchase(account: BillingAccount, **values: Any) -> bool:
    """Insert the purchase row once per Stripe object; False when it exists (granted before)."""
    stmt = (
        pg_insert(BillingPurchase)
        .values(workspace_id=account.workspace_id, clawed_back=0, **values)
        .on_conflict_do_nothing(index_elements=[BillingPurchase.stripe_ref])
        .returning(BillingPurchase.id)
    )
    return db.session.scalar(stmt) is not None


def grant_purchase(
    account: BillingAccount,
    *,
    kind: str,
    ref: str,
    item: str,
    amount: int,
    amount_cents: int,
    payment_intent: str | None,
    note: str,
) -> bool:
    """Grant ``amount`` credits for one paid Stripe object, once; repay a shortfall first. True if granted."""
    recorded = _record_purchase(
        account, kind=kind, stripe_ref=ref, item=item, credits=amount, amount_cents=amount_cents,
        payment_intent=payment_intent,
    )  # fmt: skip
    if not recorded or amount <= 0:
        return False
    entry = credits.grant(account.workspace_id, amount, idempotency_key=f"stripe:{ref}", note=note)
    if entry is None:
        return False
    _repay_shortfall(account, ref)
    return True


def _repay_shortfall(account: BillingAccount, ref: str) -> None:
    if account.credit_shortfall <= 0:
        return
    take = min(account.credit_shortfall, credits.balance(account.workspace_id))
    if take <= 0:
        return
    entry = credits.adjust(
        account.workspace_id,
        -take,
        idempotency_key=f"stripe:shortfall:{ref}",
        actor_id=None,
        note=f"Credits owed after a refund or dispute, repaid from {ref}",
    )
    if entry is not None:
        account.credit_shortfall -= take
        db.session.flush()


def claw_back(account: BillingAccount, purchase: BillingPurchase, target: int, *, reason: str) -> int:
    """Take back credits of ``purchase`` until ``target`` in all were taken; return how many this time.

    The balance gives what it holds (a ledger adjustment, never below zero); the rest is added to
    ``credit_shortfall``. ``target`` comes from Stripe's current state of the charge, so a refund
    reported twice, or a partial refund followed by a full one, takes back exactly the difference.
    """
    target = max(0, min(target, purchase.credits))
    delta = target - purchase.clawed_back
    if delta <= 0:
        return 0
    take = min(delta, credits.balance(account.workspace_id))
    if take > 0:
        entry = credits.adjust(
            account.workspace_id,
            -take,
            idempotency_key=f"stripe:clawback:{purchase.stripe_ref}:{target}",
            actor_id=None,
            note=reason,
        )
        if entry is None:
            return 0
    account.credit_shortfall += delta - take
    purchase.clawed_back = target
    db.session.flush()
    return delta


def purchased_items(workspace_id: int, ref_prefix: str) -> list[str]:
    """The plans or packs of the workspace's purchases whose Stripe reference starts with ``ref_prefix``."""
    return list(
        db.session.scalars(
            select(BillingPurchase.item).where(
                BillingPurchase.workspace_id == workspace_id,
                BillingPurchase.stripe_ref.startswith(ref_prefix, autoescape=True),
            )
        )
    )


def purchase_for_payment(payment_intent: str | None) -> BillingPurchase | None:
    if not payment_intent:
        return None
    return db.session.scalar(
        select(BillingPurchase).where(BillingPurchase.payment_intent == payment_intent).with_for_update()
    )


# Limits --------------------------------------------------------------------------------------------
#
# Plans limit a workspace only where billing is set up (a Stripe key): a Morket server run without
# billing sells nothing, so nothing is held back. Credits owed after a clawback block runs always.


def limits_apply() -> bool:
    return bool(current_app.config["MORKET"]["STRIPE_SECRET_KEY"])


def check_run(workspace_id: int, rows: int) -> None:
    """Refuse a run the plan does not allow, or any run while credits are owed after a clawback."""
    account = get_account(workspace_id)
    if account is not None and account.credit_shortfall > 0:
        raise PlanLimit(
            f"Runs are paused: {account.credit_shortfall:,} credits are owed after a refund or dispute. "
            "Buy credits on the Billing page to continue."
        )
    if not limits_apply():
        return
    current = effective_plan(account)
    if current.run_rows is not None and rows > current.run_rows:
        better = next((p for p in plans.PLANS.values() if p.run_rows is None or p.run_rows >= rows), None)
        raise PlanLimit(plans.upgrade_message(current, f"runs over more than {current.run_rows:,} rows", better))


def check_seats(workspace_id: int, seats_taken: int) -> None:
    """Refuse one more member (or invitation) beyond the plan's seats."""
    if not limits_apply():
        return
    current = plan_of(workspace_id)
    if current.seats is not None and seats_taken >= current.seats:
        better = next((p for p in plans.PLANS.values() if p.seats is None or p.seats > seats_taken), None)
        raise PlanLimit(plans.upgrade_message(current, f"more than {current.seats} seats", better))


def check_feature(workspace_id: int, feature: str) -> None:
    """Refuse a feature (``crm_sync``, ``ai``) the plan does not include."""
    if not limits_apply():
        return
    current = plan_of(workspace_id)
    if not getattr(current, feature):
        label = plans.FEATURE_LABELS.get(feature, feature)
        raise PlanLimit(plans.upgrade_message(current, label, plans.cheapest_with(feature)))


# Admin console -------------------------------------------------------------------------------------


def admin_refund(actor: Any, workspace: Workspace, purchase_id: int, reason: str) -> str:
    """Refund a purchase's payment at Stripe (a platform admin, with a reason); return the refund id.

    The credits come back out when Stripe reports the refund (``charge.refunded``), as for a
    refund made in Stripe's dashboard: one path, so a refund is never clawed back twice.
    """
    if actor is None or not actor.is_active or not actor.is_platform_admin:
        raise NotFound("Not found.")
    reason = (reason or "").strip()
    if not reason or len(reason) > 300 or "\x00" in reason:
        raise ValidationFailed(
            "Say why the purchase is refunded (up to 300 characters).", fields={"reason": ["required"]}
        )
    purchase = get_purchase_or_404(workspace.id, purchase_id)
    if not purchase.payment_intent:
        raise ValidationFailed("Stripe did not report a payment for this purchase; refund it in Stripe.")
    try:
        refund = stripe_client().v1.refunds.create(
            params={
                "payment_intent": purchase.payment_intent,
                "metadata": {"reason": reason, "admin_id": str(actor.id)},
            },
            options={"idempotency_key": f"morket-refund-{purchase.id}"},
        )
    except stripe.StripeError as exc:
        raise stripe_failed(exc) from exc
    record_audit(workspace, actor, "billing.refunded", f"billing_purchase:{purchase.id}", reason=reason,
                 refund=refund.id)  # fmt: skip
    db.session.flush()
    return str(refund.id)


def admin_summary(workspace_id: int) -> dict[str, Any]:
    """What the admin console shows of a workspace's billing: account, purchases, Stripe events."""
    account = get_account(workspace_id)
    return {
        "account": account,
        "plan": effective_plan(account),
        "purchases": list_purchases(workspace_id, limit=20),
        "events": list_events(workspace_id, limit=20),
    }


# Reading -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Usage:
    since: datetime
    total: int
    by_user: list[tuple[str, int]]
    by_column: list[tuple[str, int]]
    by_provider: list[tuple[str, int]]


_USAGE_SQL = {
    "user": (
        "SELECT coalesce(u.name, u.email, 'Automations') AS label, sum(-l.amount) AS credits"
        " FROM credit_ledger l LEFT JOIN enrichment_runs r ON r.id = l.run_id"
        " LEFT JOIN users u ON u.id = r.created_by_id"
    ),
    "column": (
        "SELECT coalesce(t.name || ' · ' || c.name, 'Deleted column') AS label, sum(-l.amount) AS credits"
        " FROM credit_ledger l LEFT JOIN table_columns c ON c.id = l.column_id"
        " LEFT JOIN tables t ON t.id = c.table_id"
    ),
    "provider": "SELECT coalesce(l.provider, 'other') AS label, sum(-l.amount) AS credits FROM credit_ledger l",
}


def period_start(account: BillingAccount | None, now: datetime | None = None) -> datetime:
    """The start of the billing period (the subscription's, else the calendar month)."""
    if account is not None and account.current_period_start is not None:
        return account.current_period_start
    now = now or utcnow()
    return now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)


def usage(workspace_id: int, since: datetime) -> Usage:
    """Credits charged since ``since``, by the user who started the run, by column and by provider."""
    found: dict[str, list[tuple[str, int]]] = {}
    for key, head in _USAGE_SQL.items():
        rows = db.session.execute(
            text(
                head + " WHERE l.workspace_id = :w AND l.kind = 'debit' AND l.created_at >= :since"
                " GROUP BY 1 ORDER BY 2 DESC, 1 LIMIT 20"
            ),
            {"w": workspace_id, "since": since},
        )
        found[key] = [(str(row.label), int(row.credits)) for row in rows]
    total = sum(amount for _, amount in found["provider"])
    return Usage(since, total, found["user"], found["column"], found["provider"])


def list_events(workspace_id: int | None = None, limit: int = 50) -> list[BillingEvent]:
    stmt = select(BillingEvent).order_by(BillingEvent.id.desc()).limit(limit)
    if workspace_id is not None:
        stmt = stmt.where(BillingEvent.workspace_id == workspace_id)
    return list(db.session.scalars(stmt))


def list_purchases(workspace_id: int, limit: int = 50) -> list[BillingPurchase]:
    return list(
        db.session.scalars(
            select(BillingPurchase)
            .where(BillingPurchase.workspace_id == workspace_id)
            .order_by(BillingPurchase.id.desc())
            .limit(limit)
        )
    )


def get_purchase_or_404(workspace_id: int, purchase_id: int) -> BillingPurchase:
    found = db.session.scalar(
        select(BillingPurchase).where(BillingPurchase.id == purchase_id, BillingPurchase.workspace_id == workspace_id)
    )
    if found is None:
        raise NotFound("There is no such purchase in this workspace.")
    return found
