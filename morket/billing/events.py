"""Stripe webhooks: verified, each event id applied exactly once, its effects in one transaction.

``verify`` checks the ``Stripe-Signature`` header over the raw body with
``stripe.Webhook.construct_event`` (5 minutes' tolerance); a bad, stale or missing signature is a
400 and nothing is written. ``process`` then claims the event id in ``billing_events`` (an
``INSERT … ON CONFLICT`` that succeeds only for a new id or one whose handling failed before) and
runs its handler in the same transaction, so the claim and the effects commit together or not at
all: an event sent twice, or two deliveries at once, apply once (the second waits on the first's
row and then finds it processed). A handler that raises leaves nothing; the view records the
failure in a transaction of its own and answers 500, and Stripe's retry applies the event.

Handlers never trust the order events arrive in: they act on the object's current state, read
from Stripe (a subscription, an unpaid invoice or session, a charge, a dispute, a PaymentIntent),
with idempotency keys on every grant, so a replay or a late event changes nothing twice. The one
exception is an object in a final state (a completed and paid Checkout session, a paid invoice, a
canceled subscription): it cannot change any more, so the event's signed copy is its current state
and is used as it is, without a round trip to Stripe.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import stripe
from flask import current_app
from sqlalchemy import select, text
from sqlalchemy.dialects.postgresql import insert as pg_insert

from morket.accounts.models import User
from morket.billing import plans, topup
from morket.billing.models import BillingAccount, BillingEvent
from morket.billing.service import (
    BillingUnavailable,
    account_for_customer,
    apply_subscription,
    claw_back,
    ensure_account,
    field,
    grant_purchase,
    purchase_for_payment,
    purchased_items,
    start_grace,
    stripe_client,
)
from morket.core.errors import MorketError
from morket.core.roles import BILLING_ADMIN, OWNER
from morket.extensions import db
from morket.workspaces.models import Membership, Workspace

TOLERANCE_SECONDS = 300
ERROR_MAX = 2000


class BadSignature(MorketError):
    """The request is not a Stripe event signed with our secret within the tolerance."""

    status = 400
    code = "bad_signature"


def verify(payload: bytes, header: str | None) -> stripe.Event:
    """The event in ``payload`` if ``header`` signs it with the webhook secret; BadSignature otherwise."""
    secret = current_app.config["MORKET"]["STRIPE_WEBHOOK_SECRET"]
    if not secret:
        raise BillingUnavailable("Billing webhooks are not set up on this Morket server.")
    if not header:
        raise BadSignature("The Stripe-Signature header is missing.")
    try:
        return stripe.Webhook.construct_event(payload, header, secret, tolerance=TOLERANCE_SECONDS)
    except ValueError:
        raise BadSignature("The body is not a Stripe event.") from None
    except stripe.SignatureVerificationError:
        raise BadSignature("The signature does not match this body, or it is older than 5 minutes.") from None


@dataclass
class Outcome:
    """What processing did: ``processed``, ``ignored`` (a type Morket does not act on) or ``duplicate``."""

    status: str
    workspace_id: int | None = None
    summary: str = ""


Handler = Callable[[Any, stripe.StripeClient, Outcome], None]


# The claim: a new event id, or one whose handling failed before (a retry); no row when the id was
# processed (or ignored) already. Written once as SQL: it runs for every delivery, so it is worth
# skipping the statement building. ``processed_at`` is set by the claim (for an ignored type, the
# claim is all there is; for the others it commits with the effects, so it is true when visible).
_CLAIM = text(
    "INSERT INTO billing_events (stripe_event_id, type, status, attempts, summary, received_at, processed_at)"
    " VALUES (:id, :type, :status, 1, '', now(), now())"
    " ON CONFLICT (stripe_event_id) DO UPDATE SET status = excluded.status,"
    " attempts = billing_events.attempts + 1, error = NULL, processed_at = now()"
    " WHERE billing_events.status = 'failed'"
    " RETURNING id"
)
_FINISH = text("UPDATE billing_events SET workspace_id = :workspace_id, summary = :summary WHERE id = :row_id")


def _claim(event: stripe.Event, status: str) -> int | None:
    """Claim the event id for this transaction; None when it was processed already.

    An ignored type is recorded as done by the claim itself (one statement, nothing else to write).
    """
    return db.session.scalar(_CLAIM, {"id": event.id, "type": event.type[:80], "status": status})


def process(event: stripe.Event) -> Outcome:
    """Apply ``event`` once, in the caller's transaction (the caller commits, or rolls back on error)."""
    handler = _handler_for(event)
    row_id = _claim(event, "processed" if handler else "ignored")
    if row_id is None:
        return Outcome("duplicate")
    if handler is None:
        return Outcome("ignored")
    outcome = Outcome("processed")
    handler(event.data.object, stripe_client(), outcome)
    db.session.execute(
        _FINISH, {"workspace_id": outcome.workspace_id, "summary": outcome.summary[:300], "row_id": row_id}
    )
    return outcome


def _handler_for(event: stripe.Event) -> Handler | None:
    """The event's handler; payment intents are Morket's business only when they are auto top-ups
    (a checkout's is granted by its session's event), so any other is recorded as ignored."""
    handler = HANDLERS.get(event.type)
    if event.type.startswith("payment_intent.") and field(event.data.object, "metadata", "kind") != topup.KIND:
        return None
    return handler


def record_failure(event: stripe.Event, exc: BaseException) -> None:
    """Note a failed handling (after the rollback, in a new transaction): Stripe's retry applies it."""
    error = f"{type(exc).__name__}: {exc}"[:ERROR_MAX]
    db.session.execute(
        pg_insert(BillingEvent)
        .values(stripe_event_id=event.id, type=event.type[:80], status="failed", attempts=1, error=error, summary="")
        .on_conflict_do_update(
            index_elements=[BillingEvent.stripe_event_id],
            set_={"error": error},
            where=BillingEvent.status == "failed",
        )
    )


# Handlers ----------------------------------------------------------------------------------------


def _account(customer: str | None, workspace_hint: Any, outcome: Outcome) -> BillingAccount | None:
    """The account of ``customer``, locked; a checkout's workspace adopts its customer the first time."""
    account = account_for_customer(customer)
    if account is None and workspace_hint is not None and str(workspace_hint).isdigit():
        workspace_id = int(str(workspace_hint))
        if db.session.get(Workspace, workspace_id) is not None:
            account = ensure_account(workspace_id, lock=True)
            if account.stripe_customer_id and customer and account.stripe_customer_id != customer:
                outcome.summary = f"customer {customer} does not belong to workspace {workspace_id}"
                return None
            if customer and not account.stripe_customer_id:
                account.stripe_customer_id = customer
    if account is None:
        outcome.summary = outcome.summary or f"no workspace for customer {customer}"
        return None
    outcome.workspace_id = account.workspace_id
    return account


# What a webhook may act on without reading the object again: a Stripe object in a final state,
# whose fields the handler uses can no longer change, so no order of delivery can make the event's
# (signed) copy stale. A completed Checkout session that is paid (or needs no payment), a paid
# invoice and a canceled subscription are final; anything that can still change (a subscription,
# an open or unpaid invoice or session, a charge, a dispute, a PaymentIntent) is read from Stripe.
FINAL_SESSION_PAYMENT = ("paid", "no_payment_required")


def _session_final(obj: Any) -> bool:
    return field(obj, "status") == "complete" and field(obj, "payment_status") in FINAL_SESSION_PAYMENT


def _checkout_completed(obj: Any, client: stripe.StripeClient, outcome: Outcome) -> None:
    if _session_final(obj):
        session = obj
    else:
        session = client.v1.checkout.sessions.retrieve(obj.id, params={"expand": ["subscription"]})
    hint = field(session, "client_reference_id") or field(session, "metadata", "workspace_id")
    account = _account(field(session, "customer"), hint, outcome)
    if account is None:
        return
    if field(session, "mode") == "subscription":
        sub = _current(field(session, "subscription"), client.v1.subscriptions.retrieve)  # its state now
        if sub is not None:
            chosen = apply_subscription(account, sub)
            outcome.summary = f"subscription {sub.id}: {chosen.name}"
        return
    if field(session, "payment_status") != "paid":
        outcome.summary = f"checkout {session.id} not paid yet ({field(session, 'payment_status')})"
        return
    pack, quantity = _session_pack(session, client)
    if pack is None:
        outcome.summary = f"checkout {session.id}: no credit pack in it"
        return
    granted = grant_purchase(
        account,
        kind="pack",
        ref=session.id,
        item=pack.key,
        amount=pack.credits * quantity,
        amount_cents=int(field(session, "amount_total") or 0),
        payment_intent=field(session, "payment_intent"),
        note=f"Credit pack: {pack.name}" + (f" × {quantity}" if quantity > 1 else ""),
    )
    outcome.summary = f"{pack.name} × {quantity}: " + ("granted" if granted else "granted before")


def _session_pack(session: Any, client: stripe.StripeClient) -> tuple[plans.CreditPack | None, int]:
    """The pack a paid session bought, and how many.

    Morket's own sessions name one pack in their metadata: when the session's total is exactly
    that pack's price in dollars, that is what was paid for. Any other session is judged by its
    line items, read from Stripe.
    """
    named = plans.PACKS.get(str(field(session, "metadata", "pack")))
    total = field(session, "amount_total")
    if named is not None and str(field(session, "currency")) == "usd" and total == named.usd * 100:
        return named, 1
    line = field(client.v1.checkout.sessions.line_items.list(session.id), "data", 0)
    return plans.pack_for_price(field(line, "price", "id")), int(field(line, "quantity") or 1)


def _current(ref: Any, retrieve: Callable[[str], Any]) -> Any:
    """An object Stripe expanded in place (read with its parent), else read now by its id; None for none."""
    if not ref:
        return None
    return retrieve(ref) if isinstance(ref, str) else ref


def _invoice_subscription(inv: Any) -> str | None:
    ref = field(inv, "parent", "subscription_details", "subscription") or field(inv, "subscription")
    return ref if ref is None or isinstance(ref, str) else field(ref, "id")


def _invoice_payment_intent(inv: Any) -> str | None:
    return field(inv, "payment_intent") or field(inv, "payments", "data", 0, "payment", "payment_intent")


def _invoice_paid(obj: Any, client: stripe.StripeClient, outcome: Outcome) -> None:
    """A paid invoice grants its plan's credits once. Paid is final, so the event's copy is used;
    the plan in force follows the subscription's own events (``customer.subscription.*``)."""
    inv = obj if field(obj, "status") == "paid" else client.v1.invoices.retrieve(obj.id)
    sub_id = _invoice_subscription(inv)
    account = _account(field(inv, "customer"), field(inv, "metadata", "workspace_id"), outcome)
    if account is None:
        return
    if field(inv, "status") != "paid" or not sub_id:
        outcome.summary = f"invoice {inv.id}: {field(inv, 'status')}, nothing to grant"
        return
    if account.grace_invoice_id == inv.id:  # the renewal that failed is paid after all
        account.grace_until = None
        account.grace_invoice_id = None
    lines = list(field(inv, "lines", "data") or [])
    period = [line for line in lines if not _proration(line)]
    if lines and not period:
        _proration_paid(inv, sub_id, lines, account, outcome)
        return
    chosen = plans.plan_for_price(_line_price(period[0])) if period else None
    if chosen is None:  # no Morket price on the invoice's first line: the subscription's price decides
        sub = _current(field(inv, "parent", "subscription_details", "subscription") or sub_id,
                       client.v1.subscriptions.retrieve)  # fmt: skip
        chosen = plans.plan_for_price(field(sub, "items", "data", 0, "price", "id"))
    if chosen is None:
        outcome.summary = f"invoice {inv.id}: no Morket plan in it"
        return
    granted = grant_purchase(
        account,
        kind="plan",
        ref=inv.id,
        item=chosen.key,
        amount=chosen.monthly_credits,
        amount_cents=int(field(inv, "amount_paid") or 0),
        payment_intent=_invoice_payment_intent(inv),
        note=f"{chosen.name} plan: this period's {chosen.monthly_credits:,} credits (invoice {inv.id})",
    )
    outcome.summary = f"invoice {inv.id}: {chosen.name} " + ("credits granted" if granted else "granted before")


def _proration(line: Any) -> bool:
    return bool(field(line, "parent", "subscription_item_details", "proration") or field(line, "proration"))


def _line_price(line: Any) -> str | None:
    return field(line, "pricing", "price_details", "price") or field(line, "price", "id") or field(line, "plan", "id")


def _proration_paid(inv: Any, sub_id: str, lines: list[Any], account: BillingAccount, outcome: Outcome) -> None:
    """A plan changed mid-period (an invoice of prorations only): an upgrade adds the difference
    between the new plan's allowance and the highest this period had, once per plan and period
    (up, down and up again adds nothing more); a downgrade adds nothing and takes nothing back."""
    new = plans.plan_for_price(next((_line_price(x) for x in lines if int(field(x, "amount") or 0) > 0), None))
    old = plans.plan_for_price(next((_line_price(x) for x in lines if int(field(x, "amount") or 0) < 0), None))
    if new is None:
        outcome.summary = f"invoice {inv.id}: plan change, no Morket plan to add credits for"
        return
    period_end = field(lines[0], "period", "end")
    prefix = f"proration:{sub_id}:{period_end}:"
    reached = max(
        [old.monthly_credits if old else 0]
        + [plans.plan(item).monthly_credits for item in purchased_items(account.workspace_id, prefix)]
    )
    extra = new.monthly_credits - reached
    if extra <= 0:
        outcome.summary = f"invoice {inv.id}: plan change to {new.name}, no credits to add this period"
        return
    granted = grant_purchase(
        account,
        kind="plan",
        ref=prefix + new.key,
        item=new.key,
        amount=extra,
        amount_cents=int(field(inv, "amount_paid") or 0),
        payment_intent=_invoice_payment_intent(inv),
        note=f"{new.name} plan from mid-period: {extra:,} more credits this period (invoice {inv.id})",
    )
    outcome.summary = f"invoice {inv.id}: upgrade to {new.name}, " + (
        f"{extra:,} credits granted" if granted else "granted before"
    )


def _invoice_failed(obj: Any, client: stripe.StripeClient, outcome: Outcome) -> None:
    inv = client.v1.invoices.retrieve(obj.id)
    account = _account(field(inv, "customer"), None, outcome)
    if account is None:
        return
    if field(inv, "status") == "paid" or not _invoice_subscription(inv):
        outcome.summary = f"invoice {inv.id}: {field(inv, 'status')}, no grace needed"
        return
    if start_grace(account, inv.id):
        _email_billing_people(account, inv)
        outcome.summary = f"invoice {inv.id} failed: grace until {account.grace_until:%Y-%m-%d}"
    else:
        outcome.summary = f"invoice {inv.id} failed: grace period already running"


def _billing_people(account: BillingAccount) -> tuple[Workspace, Any]:
    """The account's workspace and the (email, name) of its owners and billing admins: who billing mails."""
    workspace = db.session.get(Workspace, account.workspace_id)
    assert workspace is not None
    rows = db.session.execute(
        select(User.email, User.name)
        .join(Membership, Membership.user_id == User.id)
        .where(Membership.workspace_id == workspace.id, Membership.role.in_((OWNER, BILLING_ADMIN)))
    )
    return workspace, rows


def _email_billing_people(account: BillingAccount, inv: Any) -> None:
    from morket.mail.service import absolute_url, send_email

    workspace, rows = _billing_people(account)
    link = absolute_url("billing.index", slug=workspace.slug)
    current = plans.plan(account.plan)
    for row in rows:
        send_email(
            row.email,
            f"Payment failed for {workspace.name}: update your card within "
            f"{current_app.config['MORKET']['BILLING_GRACE_DAYS']} days",
            "billing_payment_failed",
            name=row.name,
            workspace_name=workspace.name,
            plan_name=current.name,
            grace_until=account.grace_until,
            link=link,
            amount=int(field(inv, "amount_due") or 0) / 100,
            currency=str(field(inv, "currency") or "usd").upper(),
        )


# A subscription in one of these states stays in it: the event's copy is its current state.
FINAL_SUBSCRIPTION = ("canceled", "incomplete_expired")


def _subscription_changed(obj: Any, client: stripe.StripeClient, outcome: Outcome) -> None:
    try:
        sub = obj if field(obj, "status") in FINAL_SUBSCRIPTION else client.v1.subscriptions.retrieve(obj.id)
    except stripe.InvalidRequestError as exc:
        if exc.http_status != 404:
            raise
        sub = obj  # gone at Stripe: the event's copy says how it ended
        if field(sub, "status") in ("active", "trialing", "past_due"):
            sub["status"] = "canceled"
    account = _account(field(sub, "customer"), field(sub, "metadata", "workspace_id"), outcome)
    if account is None:
        return
    chosen = apply_subscription(account, sub)
    outcome.summary = f"subscription {sub.id} {field(sub, 'status')}: {chosen.name}"


class NotGrantedYet(Exception):
    """A refund or dispute of a Morket payment arrived before the event that grants the payment:
    the handling fails so that Stripe retries it, and by then the grant is there to claw back."""


def _charge_refunded(obj: Any, client: stripe.StripeClient, outcome: Outcome) -> None:
    charge = client.v1.charges.retrieve(obj.id)
    _claw_back_charge(charge, client, outcome, dispute=None)


def _dispute_created(obj: Any, client: stripe.StripeClient, outcome: Outcome) -> None:
    dispute = client.v1.disputes.retrieve(obj.id)
    charge_id = field(dispute, "charge")
    charge = client.v1.charges.retrieve(charge_id if isinstance(charge_id, str) else charge_id.id)
    _claw_back_charge(charge, client, outcome, dispute=dispute.id)


def _claw_back_charge(charge: Any, client: stripe.StripeClient, outcome: Outcome, *, dispute: str | None) -> None:
    intent = field(charge, "payment_intent")
    purchase = purchase_for_payment(intent if isinstance(intent, str) else field(intent, "id"))
    if purchase is None:
        # A pack's or an auto top-up's payment names its workspace: if it was not granted yet, its
        # event is still to come (order is not guaranteed), so this one waits for Stripe's retry.
        paid = _current(intent, client.v1.payment_intents.retrieve)
        if field(paid, "status") == "succeeded" and field(paid, "metadata", "workspace_id"):
            raise NotGrantedYet(f"charge {charge.id}: its payment {paid.id} is not granted yet; retry later")
        outcome.summary = f"charge {charge.id}: no credits were granted for it"
        return
    account = ensure_account(purchase.workspace_id, lock=True)
    outcome.workspace_id = account.workspace_id
    amount = int(field(charge, "amount") or 0)
    refunded = int(field(charge, "amount_refunded") or 0)
    if dispute is not None or field(charge, "refunded") or (amount and refunded >= amount):
        target = purchase.credits
    else:
        target = purchase.credits * refunded // amount if amount else 0
    why = f"dispute {dispute}" if dispute else f"refund of charge {charge.id}"
    taken = claw_back(account, purchase, target, reason=f"Credits taken back: {why} ({purchase.stripe_ref})")
    outcome.summary = f"{why}: {taken:,} credits taken back, {account.credit_shortfall:,} owed"


def _topup_intent(obj: Any, client: stripe.StripeClient, outcome: Outcome) -> tuple[Any, BillingAccount] | None:
    """The auto top-up's PaymentIntent as Stripe has it now, and its account; None for any other payment.

    A checkout's payment intent is left alone without a call (its session's event grants it).
    """
    if field(obj, "metadata", "kind") != topup.KIND:
        outcome.summary = f"payment intent {obj.id}: not an auto top-up"
        return None
    intent = client.v1.payment_intents.retrieve(obj.id)
    if field(intent, "metadata", "kind") != topup.KIND:
        outcome.summary = f"payment intent {obj.id}: not an auto top-up"
        return None
    account = _account(field(intent, "customer"), None, outcome)
    if account is None:
        return None
    return intent, account


def _topup_succeeded(obj: Any, client: stripe.StripeClient, outcome: Outcome) -> None:
    found = _topup_intent(obj, client, outcome)
    if found is None:
        return
    intent, account = found
    pack = plans.PACKS.get(str(field(intent, "metadata", "pack")))
    received = int(field(intent, "amount_received") or 0)
    if field(intent, "status") != "succeeded" or pack is None or received != pack.usd * 100:
        outcome.summary = f"{topup.SUMMARY_PREFIX} {intent.id}: {field(intent, 'status')}, nothing to grant"
        return
    granted = grant_purchase(
        account,
        kind="pack",
        ref=intent.id,
        item=pack.key,
        amount=pack.credits,
        amount_cents=received,
        payment_intent=intent.id,
        note=f"Auto top-up: {pack.name}",
    )
    outcome.summary = f"{topup.SUMMARY_PREFIX} {pack.name}: " + ("granted" if granted else "granted before")


def _topup_failed(obj: Any, client: stripe.StripeClient, outcome: Outcome) -> None:
    found = _topup_intent(obj, client, outcome)
    if found is None:
        return
    intent, account = found
    if field(intent, "status") == "succeeded":
        outcome.summary = f"{topup.SUMMARY_PREFIX} {intent.id}: paid after all"
        return
    pack = plans.PACKS.get(str(field(intent, "metadata", "pack")))
    message = str(field(intent, "last_payment_error", "message") or "The payment failed.")
    outcome.summary = f"{topup.SUMMARY_PREFIX} failed: {message}"
    _email_topup_failed(account, pack, message, int(field(intent, "amount") or 0))


def _email_topup_failed(account: BillingAccount, pack: plans.CreditPack | None, message: str, cents: int) -> None:
    from morket.mail.service import absolute_url, send_email

    workspace, rows = _billing_people(account)
    link = absolute_url("billing.index", slug=workspace.slug)
    for row in rows:
        send_email(
            row.email,
            f"Auto top-up failed for {workspace.name}",
            "billing_auto_topup_failed",
            name=row.name,
            workspace_name=workspace.name,
            pack_name=pack.name if pack else "credit pack",
            threshold=account.auto_topup_threshold,
            message=message,
            amount=cents / 100,
            link=link,
        )


HANDLERS: dict[str, Handler] = {
    "payment_intent.succeeded": _topup_succeeded,
    "payment_intent.payment_failed": _topup_failed,
    "checkout.session.completed": _checkout_completed,
    "checkout.session.async_payment_succeeded": _checkout_completed,
    "invoice.paid": _invoice_paid,
    "invoice.payment_succeeded": _invoice_paid,
    "invoice.payment_failed": _invoice_failed,
    "customer.subscription.created": _subscription_changed,
    "customer.subscription.updated": _subscription_changed,
    "customer.subscription.deleted": _subscription_changed,
    "charge.refunded": _charge_refunded,
    "charge.dispute.created": _dispute_created,
}
