"""Buying through the Stripe sandbox: the redirect back grants nothing, the webhook grants once.

The sandbox is Morket's local Stripe (the official client pointed at it); its signed webhooks are
relayed to the app byte for byte (see ``StripeRelay``).
"""

from __future__ import annotations

from urllib.parse import urlsplit

from sqlalchemy import func, select

from morket.billing import service
from morket.billing.models import BillingEvent, BillingPurchase
from morket.credits import service as credits
from morket.credits.models import LedgerEntry
from tests.billing.conftest import pay_on_page
from tests.factories import csrf_token, login


def _grants(db, workspace_id: int) -> list[LedgerEntry]:
    return list(
        db.session.scalars(
            select(LedgerEntry).where(LedgerEntry.workspace_id == workspace_id, LedgerEntry.kind == "grant")
        )
    )


def _checkout(client, slug: str, **choice: str):
    token = csrf_token(client, f"/w/{slug}/billing")
    return client.post(f"/w/{slug}/billing/checkout", data={"csrf_token": token, **choice})


def test_a_billing_admin_buys_pro_and_only_the_webhook_grants_it_once(client, db, team, stripe_relay):
    workspace = team.workspace
    login(client, team["billing_admin"])
    resp = _checkout(client, workspace.slug, plan="pro")
    assert resp.status_code == 303
    checkout_url = resp.headers["Location"]
    assert checkout_url.startswith(stripe_relay.api + "/checkout/cs_")

    paid = pay_on_page(checkout_url)
    assert paid.status_code == 303
    back = urlsplit(paid.headers["Location"])
    assert back.path == f"/w/{workspace.slug}/billing" and "checkout=success" in back.query

    # The browser comes back first: a thank-you note, and still nothing granted.
    page = client.get(f"{back.path}?{back.query}")
    assert page.status_code == 200 and "Stripe is confirming the payment" in page.get_data(as_text=True)
    assert credits.balance(workspace.id) == 0
    assert service.plan_of(workspace.id).key == "free"

    answers = stripe_relay.deliver(client)
    assert answers and all(status == 200 for _, status, _ in answers), answers
    assert service.plan_of(workspace.id).key == "pro"
    assert credits.balance(workspace.id) == 20_000
    account = service.get_account(workspace.id)
    assert account.stripe_customer_id and account.subscription_status == "active"
    assert account.current_period_end is not None

    # Stripe sends every event three more times, out of order: still one grant.
    for event_id in stripe_relay.event_ids():
        stripe_relay.post(f"events/{event_id}/resend", times=3)
    answers = stripe_relay.deliver(client, reverse=True)
    assert len(answers) >= 3 * 5 and {status for _, status, _ in answers} == {200}
    assert {body["status"] for _, _, body in answers} == {"duplicate"}
    stripe_relay.deliver(client, again=True, reverse=True)
    assert credits.balance(workspace.id) == 20_000
    grants = _grants(db, workspace.id)
    assert len(grants) == 1 and grants[0].idempotency_key.startswith("stripe:in_")
    ids = stripe_relay.event_ids()
    assert db.session.scalar(select(func.count()).select_from(BillingEvent)) == len(set(ids))

    page = client.get(f"/w/{workspace.slug}/billing").get_data(as_text=True)
    assert 'id="current-plan">Pro<' in page and "Renews on" in page
    assert "20,000" in page and "paid" in page  # the balance, and the paid invoice listed from Stripe


def test_events_arriving_in_reverse_still_activate_the_plan(client, db, team, stripe_relay):
    workspace = team.workspace
    login(client, team["owner"])
    stripe_relay.post("webhooks/hold")
    url = _checkout(client, workspace.slug, plan="starter").headers["Location"]
    assert pay_on_page(url).status_code == 303
    stripe_relay.post("webhooks/release", order="reverse")
    answers = stripe_relay.deliver(client)
    types = [kind for kind, _, _ in answers]
    assert types.index("checkout.session.completed") < types.index("invoice.paid")
    assert service.plan_of(workspace.id).key == "starter"
    assert credits.balance(workspace.id) == 5_000


def test_a_credit_pack_adds_exactly_the_pack(client, db, team, stripe_relay, app):
    from morket.api.tokens import encode_access_token

    workspace = team.workspace
    credits.grant(workspace.id, 123, idempotency_key="test:start", note="start")
    bearer = {"Authorization": f"Bearer {encode_access_token(team['owner'].id, workspace.id, 'owner')}"}
    resp = client.post("/api/v1/billing/checkout", json={"pack": "pack_5k"}, headers=bearer)
    assert resp.status_code == 201, resp.get_json()
    url = resp.get_json()["data"]["url"]
    assert pay_on_page(url).status_code == 303
    assert credits.balance(workspace.id) == 123
    stripe_relay.deliver(client)
    stripe_relay.deliver(client, again=True)
    assert credits.balance(workspace.id) == 123 + 5_000
    purchase = db.session.scalar(select(BillingPurchase).where(BillingPurchase.workspace_id == workspace.id))
    assert purchase.kind == "pack" and purchase.credits == 5_000 and purchase.payment_intent
    assert service.plan_of(workspace.id).key == "free"  # a pack is not a plan


def test_one_stripe_customer_per_workspace(client, db, team, stripe_relay):
    workspace = team.workspace
    login(client, team["owner"])
    first = _checkout(client, workspace.slug, pack="pack_5k")
    second = _checkout(client, workspace.slug, plan="pro")
    assert first.status_code == second.status_code == 303
    customer = service.get_account(workspace.id).stripe_customer_id
    sessions = stripe_relay.client.v1.checkout.sessions.list(params={"limit": 10}).data
    assert len(sessions) == 2 and {s.customer for s in sessions} == {customer}
    found = stripe_relay.client.v1.customers.list(params={"limit": 10}).data
    assert [c.id for c in found] == [customer]


def test_bad_choices_are_refused_with_a_message(client, db, team, stripe_relay):
    workspace = team.workspace
    login(client, team["owner"])
    resp = _checkout(client, workspace.slug, plan="platinum")
    assert resp.status_code == 303
    page = client.get(resp.headers["Location"]).get_data(as_text=True)
    assert "There is no such paid plan." in page
    from morket.api.tokens import encode_access_token

    bearer = {"Authorization": f"Bearer {encode_access_token(team['owner'].id, workspace.id, 'owner')}"}
    for body in ({}, {"plan": "pro", "pack": "pack_5k"}, {"pack": "pack_1m"}):
        resp = client.post("/api/v1/billing/checkout", json=body, headers=bearer)
        assert resp.status_code == 422, body
    assert stripe_relay.client.v1.checkout.sessions.list().data == []


def test_a_subscribed_workspace_changes_plans_in_the_portal_not_a_second_checkout(client, db, team, stripe_relay):
    workspace = team.workspace
    login(client, team["owner"])
    assert pay_on_page(_checkout(client, workspace.slug, plan="pro").headers["Location"]).status_code == 303
    stripe_relay.deliver(client)
    resp = _checkout(client, workspace.slug, plan="team")
    assert resp.headers["Location"] == f"/w/{workspace.slug}/billing"
    page = client.get(resp.headers["Location"]).get_data(as_text=True)
    assert "change plans from Stripe&#39;s billing portal" in page and "Switch in Stripe" in page
    assert len(stripe_relay.client.v1.checkout.sessions.list().data) == 1
    token = csrf_token(client, f"/w/{workspace.slug}/billing")
    portal = client.post(f"/w/{workspace.slug}/billing/portal", data={"csrf_token": token})
    assert portal.status_code == 303 and portal.headers["Location"].startswith(stripe_relay.api + "/portal/")


def test_an_upgrade_mid_period_grants_the_allowance_difference_once(client, db, team, stripe_relay):
    import httpx

    workspace = team.workspace
    login(client, team["billing_admin"])
    assert pay_on_page(_checkout(client, workspace.slug, plan="starter").headers["Location"]).status_code == 303
    stripe_relay.deliver(client)
    assert credits.balance(workspace.id) == 5_000 and service.plan_of(workspace.id).key == "starter"
    token = csrf_token(client, f"/w/{workspace.slug}/billing")
    portal = client.post(f"/w/{workspace.slug}/billing/portal", data={"csrf_token": token}).headers["Location"]
    sub_id = service.get_account(workspace.id).stripe_subscription_id

    def switch(plan: str) -> None:
        resp = httpx.post(portal, data={"action": "switch", "subscription": sub_id, "price": f"price_morket_{plan}"})
        assert resp.status_code == 303
        assert all(status == 200 for _, status, _ in stripe_relay.deliver(client))
        assert service.plan_of(workspace.id).key == plan

    switch("pro")  # Stripe invoices the prorations at once; Pro adds what it has over Starter
    invoice = stripe_relay.client.v1.invoices.list(params={"subscription": sub_id, "limit": 1}).data[0]
    assert invoice.billing_reason == "subscription_update" and invoice.status == "paid" and invoice.amount_paid > 0
    assert [line.amount > 0 for line in invoice.lines.data] == [False, True]
    assert credits.balance(workspace.id) == 20_000
    stripe_relay.deliver(client, again=True, reverse=True)  # Stripe resends, in any order: still once
    assert credits.balance(workspace.id) == 20_000

    switch("starter")  # a downgrade adds nothing and takes nothing back
    switch("pro")  # up again in the same period: Pro's allowance was granted already
    assert credits.balance(workspace.id) == 20_000
    switch("team")  # beyond the highest this period: only the difference to it
    assert credits.balance(workspace.id) == 100_000
    notes = [entry.note for entry in _grants(db, workspace.id)]
    assert len(notes) == 3 and notes[1].startswith("Pro plan from mid-period: 15,000 more credits")
    purchases = db.session.scalars(select(BillingPurchase).where(BillingPurchase.workspace_id == workspace.id))
    assert sorted(p.credits for p in purchases) == [5_000, 15_000, 80_000]
