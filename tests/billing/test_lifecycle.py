"""A subscription's life through the Stripe sandbox: a crash mid-event, a declined renewal and its
grace period, the fall to the free plan, refunds and disputes clawing credits back."""

from __future__ import annotations

import importlib
import time
from datetime import timedelta

import pytest
from sqlalchemy import select

from morket.billing import service
from morket.billing.models import BillingEvent, BillingPurchase
from morket.core.db import utcnow
from morket.core.models import MailMessage
from morket.credits import service as credits
from tests.billing.conftest import pay_on_page
from tests.factories import csrf_token, login

DAY = 86_400


def _buy(client, relay, slug: str, card: str = "4242424242424242", **choice: str) -> None:
    token = csrf_token(client, f"/w/{slug}/billing")
    resp = client.post(f"/w/{slug}/billing/checkout", data={"csrf_token": token, **choice})
    assert resp.status_code == 303, resp.headers
    assert pay_on_page(resp.headers["Location"], card).status_code == 303


def _on_clock(db, relay, workspace) -> str:
    """Give the workspace a Stripe customer that lives on a fresh test clock; return the clock id."""
    clock = relay.client.v1.test_helpers.test_clocks.create(params={"frozen_time": int(time.time())})
    customer = relay.client.v1.customers.create(params={"email": "clock@example.com", "test_clock": clock.id})
    service.ensure_account(workspace.id).stripe_customer_id = customer.id
    db.session.flush()
    return clock.id


def _advance(relay, clock_id: str, seconds: int) -> None:
    clock = relay.client.v1.test_helpers.test_clocks.retrieve(clock_id)
    relay.client.v1.test_helpers.test_clocks.advance(clock_id, params={"frozen_time": clock.frozen_time + seconds})


def test_a_crash_inside_a_handler_leaves_nothing_and_the_retry_applies_it(client, db, team, stripe_relay, monkeypatch):
    workspace = team.workspace
    login(client, team["owner"])
    real_grant = credits.grant

    def grant_then_crash(*args, **kwargs):
        real_grant(*args, **kwargs)  # the ledger entry and the balance are written...
        raise RuntimeError("worker lost in the middle of the event")  # ...then the handler dies

    monkeypatch.setattr(credits, "grant", grant_then_crash)
    _buy(client, stripe_relay, workspace.slug, plan="pro")
    answers = stripe_relay.deliver(client)
    failed = [(kind, status) for kind, status, _ in answers if status != 200]
    assert ("invoice.paid", 500) in failed
    # None of the failed event's effects stayed: no credits, no purchase, and it is marked for a retry.
    assert credits.balance(workspace.id) == 0
    assert db.session.scalar(select(BillingPurchase).where(BillingPurchase.workspace_id == workspace.id)) is None
    row = db.session.scalar(select(BillingEvent).where(BillingEvent.type == "invoice.paid"))
    assert row.status == "failed" and "worker lost" in row.error and row.processed_at is None

    monkeypatch.setattr(credits, "grant", real_grant)
    stripe_relay.deliver(client, again=True)  # Stripe retries every delivery that was not a 2xx
    assert credits.balance(workspace.id) == 20_000
    db.session.refresh(row)
    assert row.status == "processed" and row.error is None and row.attempts == 2
    stripe_relay.deliver(client, again=True)
    assert credits.balance(workspace.id) == 20_000


def test_a_declined_renewal_gives_grace_with_a_banner_and_email_then_the_free_plan(
    client, new_client, db, team, stripe_relay, smtp_server, run_jobs
):
    workspace = team.workspace
    clock = _on_clock(db, stripe_relay, workspace)
    login(client, team["billing_admin"])
    _buy(client, stripe_relay, workspace.slug, card="4000000000000341", plan="pro")  # pays now, declines later
    stripe_relay.deliver(client)
    assert service.plan_of(workspace.id).key == "pro" and credits.balance(workspace.id) == 20_000

    _advance(stripe_relay, clock, 31 * DAY)  # past the period's end: the renewal is declined
    answers = stripe_relay.deliver(client)
    assert ("invoice.payment_failed", 200) in [(kind, status) for kind, status, _ in answers]
    account = service.get_account(workspace.id)
    assert account.grace_until is not None and account.subscription_status == "past_due"
    assert timedelta(days=6) < account.grace_until - utcnow() <= timedelta(days=7)
    assert service.plan_of(workspace.id).key == "pro"  # the plan holds during the grace period
    assert credits.balance(workspace.id) == 20_000  # a failed renewal grants nothing

    page = client.get(f"/w/{workspace.slug}/billing").get_data(as_text=True)
    assert "The last payment for the Pro plan failed" in page
    member = new_client()
    login(member, team["member"])
    dashboard = member.get(f"/w/{workspace.slug}/").get_data(as_text=True)
    assert 'id="billing-banner"' in dashboard and "Update billing" not in dashboard  # no billing link for members

    mails = db.session.scalars(select(MailMessage).where(MailMessage.subject.like("Payment failed%"))).all()
    assert sorted(m.to_address for m in mails) == sorted([team["owner"].email, team["billing_admin"].email])
    run_jobs()
    received = smtp_server.wait_for(team["billing_admin"].email)[-1]
    assert "keeps its plan until" in received.text

    # Stripe's retries fail too; past the grace period it cancels the subscription.
    _advance(stripe_relay, clock, 8 * DAY)
    stripe_relay.deliver(client)
    account = service.get_account(workspace.id)
    assert account.plan == "free" and account.grace_until is None and account.subscription_status == "canceled"
    assert credits.balance(workspace.id) == 20_000  # credits already granted stay

    # On the free plan a run above its size is refused with an upgrade message.
    with pytest.raises(service.PlanLimit, match="Upgrade to Starter on the Billing page"):
        service.check_run(workspace.id, 5_000)
    service.check_run(workspace.id, 500)


def test_the_grace_period_ends_by_the_clock_even_without_word_from_stripe(db, team, stripe_settings):
    workspace = team.workspace
    account = service.ensure_account(workspace.id)
    account.plan = "team"
    assert service.start_grace(account, "in_test", now=utcnow() - timedelta(days=8))
    assert service.plan_of(workspace.id).key == "free"  # limits apply at once, before the job runs
    from workers.schedule import SCHEDULE

    job = next(job for job in SCHEDULE if job.name == "end-billing-grace")
    module, _, name = job.func.rpartition(".")
    assert getattr(importlib.import_module(module), name)() == 1
    account = service.get_account(workspace.id)
    assert account.plan == "free" and account.grace_until is None


def test_a_refund_claws_back_what_the_balance_holds_and_records_the_rest(client, db, team, stripe_relay):
    workspace = team.workspace
    login(client, team["owner"])
    _buy(client, stripe_relay, workspace.slug, pack="pack_5k")
    stripe_relay.deliver(client)
    assert credits.balance(workspace.id) == 5_000
    credits.charge(workspace.id, 4_000, idempotency_key="test:spent")

    purchase = db.session.scalar(select(BillingPurchase).where(BillingPurchase.workspace_id == workspace.id))
    stripe_relay.client.v1.refunds.create(params={"payment_intent": purchase.payment_intent})
    stripe_relay.deliver(client)
    stripe_relay.deliver(client, again=True)
    assert credits.balance(workspace.id) == 0  # never below zero
    account = service.get_account(workspace.id)
    assert account.credit_shortfall == 4_000
    assert credits.ledger_total(workspace.id) == 0
    with pytest.raises(service.PlanLimit, match="4,000 credits are owed"):
        service.check_run(workspace.id, 1)

    # The next purchase repays what is owed first.
    _buy(client, stripe_relay, workspace.slug, pack="pack_5k")
    stripe_relay.deliver(client)
    assert credits.balance(workspace.id) == 1_000
    assert service.get_account(workspace.id).credit_shortfall == 0
    service.check_run(workspace.id, 1)


def test_a_partial_refund_then_a_dispute_take_back_each_share_once(client, db, team, stripe_relay):
    workspace = team.workspace
    login(client, team["owner"])
    _buy(client, stripe_relay, workspace.slug, pack="pack_25k")
    stripe_relay.deliver(client)
    purchase = db.session.scalar(select(BillingPurchase).where(BillingPurchase.workspace_id == workspace.id))
    intent = stripe_relay.client.v1.payment_intents.retrieve(purchase.payment_intent)
    charge_id = intent.latest_charge if isinstance(intent.latest_charge, str) else intent.latest_charge.id
    stripe_relay.client.v1.refunds.create(params={"charge": charge_id, "amount": 5_000})  # a quarter of $200
    stripe_relay.deliver(client)
    assert credits.balance(workspace.id) == 25_000 - 6_250
    stripe_relay.post(f"charges/{charge_id}/dispute", reason="fraudulent")
    stripe_relay.deliver(client)
    stripe_relay.deliver(client, again=True)
    assert credits.balance(workspace.id) == 0
    db.session.refresh(purchase)
    assert purchase.clawed_back == 25_000
    assert service.get_account(workspace.id).credit_shortfall == 0


def test_a_refund_that_arrives_before_its_grant_waits_for_the_retry_then_claws_back(client, db, team, stripe_relay):
    workspace = team.workspace
    login(client, team["owner"])
    _buy(client, stripe_relay, workspace.slug, pack="pack_5k")  # paid at Stripe; no event delivered yet
    intent = stripe_relay.client.v1.checkout.sessions.list().data[0].payment_intent
    stripe_relay.client.v1.refunds.create(params={"payment_intent": intent})

    answers = stripe_relay.deliver(client, reverse=True)  # the refund's events first, the checkout's last
    assert ("charge.refunded", 500) in [(kind, status) for kind, status, _ in answers]
    assert credits.balance(workspace.id) == 5_000  # granted by the checkout's event; the refund waits
    row = db.session.scalar(select(BillingEvent).where(BillingEvent.type == "charge.refunded"))
    assert row.status == "failed" and "not granted yet" in row.error

    stripe_relay.deliver(client, again=True)  # Stripe retries the delivery that failed
    assert credits.balance(workspace.id) == 0
    purchase = db.session.scalar(select(BillingPurchase).where(BillingPurchase.workspace_id == workspace.id))
    assert purchase.clawed_back == 5_000 and service.get_account(workspace.id).credit_shortfall == 0
    db.session.refresh(row)
    assert row.status == "processed" and row.attempts == 2
