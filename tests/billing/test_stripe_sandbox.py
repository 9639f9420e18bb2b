"""The Stripe sandbox through the official ``stripe`` client: checkout on the hosted page, signed
webhooks verified with ``stripe.Webhook.construct_event``, declines, duplicates and reordering,
test-clock renewals (paid, failed, canceled), refunds, errors, idempotency and pagination."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
import stripe

from morket.devserver import DevServer
from tests.support.live import chromium_page
from tests.support.sandbox import WebhookSink

SCREENSHOTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "screenshots"
SECRET = "whsec_sandbox_tests_5f1e"
MONTH = 31 * 86_400
DAY = 86_400


class StripeSandbox:
    """The running sandbox's Stripe part: a real client, its control API and a webhook receiver."""

    def __init__(self, base: str, sink: WebhookSink) -> None:
        self.api = f"{base}/stripe"
        self.control = httpx.Client(base_url=f"{base}/_sandbox/stripe", timeout=10)
        self.sink = sink
        self.client = self.client_for("sk_test_morket_sandbox_tests")

    def client_for(self, key: str) -> stripe.StripeClient:
        return stripe.StripeClient(
            key,
            base_addresses={"api": self.api},
            max_network_retries=0,
        )

    def post(self, path: str, **body: Any) -> dict[str, Any]:
        resp = self.control.post(path, json=body)
        assert resp.status_code < 300, resp.text
        return resp.json()

    def events(self, *, settle: float = 10.0) -> list[stripe.Event]:
        """Every webhook received so far, each verified against the endpoint secret."""
        assert self.post("webhooks/wait", timeout=settle)["idle"]
        with self.sink.lock:
            received = list(self.sink.received)
        return [stripe.Webhook.construct_event(r["body"], r["headers"]["Stripe-Signature"], SECRET) for r in received]

    def types(self) -> list[str]:
        return [e.type for e in self.events()]

    def forget_received(self) -> None:
        self.events()
        with self.sink.lock:
            self.sink.received.clear()


@pytest.fixture
def stripe_sandbox(sandbox_server):
    """The sandbox's Stripe state reset, its webhooks going to a fresh receiver signed with SECRET."""
    sink = WebhookSink().start()
    box = StripeSandbox(sandbox_server.base, sink)
    box.post("reset")
    box.post("config", webhook_url=sink.url("/billing/stripe/webhook"), webhook_secret=SECRET)
    yield box
    box.post("reset")
    sink.stop()
    box.control.close()


def new_session(box: StripeSandbox, price: str = "price_morket_pro", **extra: Any) -> stripe.checkout.Session:
    mode = "payment" if "pack" in price else "subscription"
    params = {
        "mode": mode,
        "line_items": [{"price": price, "quantity": 1}],
        "client_reference_id": "42",
        "success_url": "https://morket.example/billing/done?session_id={CHECKOUT_SESSION_ID}",
        "cancel_url": "https://morket.example/billing",
        "metadata": {"workspace_id": "42"},
        **extra,
    }
    return box.client.v1.checkout.sessions.create(params=params)


def pay_on_page(
    session: stripe.checkout.Session, card: str = "4242424242424242", action: str = "pay"
) -> httpx.Response:
    """Open the hosted page, check it offers the card, and submit its form as a browser would."""
    page = httpx.get(session.url)
    assert page.status_code == 200
    assert f'value="{card}"' in page.text and 'value="decline"' in page.text
    return httpx.post(session.url, data={"email": "ada@example.com", "card": card, "action": action})


def on_clock(box: StripeSandbox, card: str = "4242424242424242") -> tuple[str, str, stripe.Subscription]:
    """A customer on a fresh test clock, subscribed to Pro through Checkout with ``card``."""
    clock = box.client.v1.test_helpers.test_clocks.create(params={"frozen_time": int(time.time())})
    customer = box.client.v1.customers.create(params={"email": "clock@example.com", "test_clock": clock.id})
    session = new_session(box, customer=customer.id)
    assert pay_on_page(session, card).status_code == 303
    sub_id = box.client.v1.checkout.sessions.retrieve(session.id).subscription
    return clock.id, customer.id, box.client.v1.subscriptions.retrieve(sub_id)


def period_end(sub: stripe.Subscription) -> int:
    return sub["items"].data[0].current_period_end


# -- checkout and webhooks ----------------------------------------------------------------------


def test_subscription_checkout_on_the_hosted_page_sends_signed_events(stripe_sandbox):
    box = stripe_sandbox
    customer = box.client.v1.customers.create(params={"email": "ada@example.com", "metadata": {"workspace_id": "42"}})
    session = new_session(box, customer=customer.id, subscription_data={"metadata": {"workspace_id": "42"}})
    assert session.status == "open" and session.payment_status == "unpaid" and session.amount_total == 14900

    done = pay_on_page(session)

    assert done.status_code == 303
    assert done.headers["Location"] == f"https://morket.example/billing/done?session_id={session.id}"
    events = box.events()
    types = [e.type for e in events]
    assert types[-1] == "checkout.session.completed"
    assert {"customer.subscription.created", "invoice.paid", "invoice.payment_succeeded"} <= set(types)
    completed = events[-1].data.object
    assert completed.payment_status == "paid" and completed.client_reference_id == "42"
    assert completed.metadata["workspace_id"] == "42" and completed.customer == customer.id
    fresh = box.client.v1.checkout.sessions.retrieve(session.id, params={"expand": ["subscription.latest_invoice"]})
    sub = fresh.subscription
    assert sub.status == "active" and sub.metadata["workspace_id"] == "42"
    assert sub["items"].data[0].price.id == "price_morket_pro"
    assert sub.latest_invoice.status == "paid" and sub.latest_invoice.amount_paid == 14900
    assert sub.latest_invoice.parent.subscription_details.subscription == sub.id
    assert period_end(sub) > sub["items"].data[0].current_period_start + 27 * DAY
    # The signature is real: another secret or a changed body does not verify.
    raw = box.sink.received[-1]
    with pytest.raises(stripe.SignatureVerificationError):
        stripe.Webhook.construct_event(raw["body"], raw["headers"]["Stripe-Signature"], "whsec_other")
    with pytest.raises(stripe.SignatureVerificationError):
        stripe.Webhook.construct_event(raw["body"] + b" ", raw["headers"]["Stripe-Signature"], SECRET)
    # A completed session's page no longer takes payment.
    assert "was paid" in httpx.get(session.url).text


def test_a_declined_card_keeps_the_session_open_and_a_later_payment_completes_it(stripe_sandbox):
    box = stripe_sandbox
    session = new_session(box, "price_morket_pack_5k", payment_intent_data={"metadata": {"workspace_id": "42"}})

    declined = pay_on_page(session, action="decline")
    insufficient = pay_on_page(session, card="4000000000009995")

    assert declined.status_code == 402 and "Your card was declined." in declined.text
    assert "insufficient funds" in insufficient.text
    assert box.client.v1.checkout.sessions.retrieve(session.id).status == "open"
    assert box.types() == ["charge.failed", "payment_intent.payment_failed"] * 2
    box.forget_received()

    assert pay_on_page(session).status_code == 303

    completed = box.events()[-1]
    assert completed.type == "checkout.session.completed"
    assert completed.data.object.payment_status == "paid" and completed.data.object.mode == "payment"
    intent = box.client.v1.payment_intents.retrieve(completed.data.object.payment_intent)
    assert intent.status == "succeeded" and intent.amount_received == 5000
    assert intent.metadata["workspace_id"] == "42"


@pytest.mark.parametrize(
    ("iban", "outcome", "status"),
    [("DE89370400440532013000", "succeeded", "paid"), ("DE62370400440532013001", "failed", "unpaid")],
)
def test_a_debit_that_settles_later_completes_unpaid_then_succeeds_or_fails(stripe_sandbox, iban, outcome, status):
    box = stripe_sandbox
    session = new_session(box, "price_morket_pack_5k")
    assert iban not in httpx.get(new_session(box).url).text  # not offered for subscriptions

    assert pay_on_page(session, card=iban).status_code == 303

    events = box.events()
    assert [e.type for e in events][-3:] == [
        "charge.pending",
        "payment_intent.processing",
        "checkout.session.completed",
    ]
    assert events[-1].data.object.payment_status == "unpaid"
    with pytest.raises(stripe.InvalidRequestError):  # nothing to refund yet
        box.client.v1.refunds.create(params={"payment_intent": events[-1].data.object.payment_intent})
    box.forget_received()

    box.post(f"checkout/{session.id}/settle")

    settled = box.events()
    assert settled[-1].type == f"checkout.session.async_payment_{outcome}"
    assert box.client.v1.checkout.sessions.retrieve(session.id).payment_status == status
    assert box.control.post(f"checkout/{session.id}/settle", json={}).status_code == 400


def test_sessions_expire_after_a_day_or_when_expired_and_their_page_says_so(stripe_sandbox):
    box = stripe_sandbox
    clock = box.client.v1.test_helpers.test_clocks.create(params={"frozen_time": int(time.time())})
    customer = box.client.v1.customers.create(params={"test_clock": clock.id})
    late = new_session(box, customer=customer.id)
    now = new_session(box, "price_morket_pack_5k")

    box.client.v1.test_helpers.test_clocks.advance(clock.id, params={"frozen_time": clock.frozen_time + DAY + 1})
    expired = box.client.v1.checkout.sessions.expire(now.id)

    assert box.client.v1.checkout.sessions.retrieve(late.id).status == "expired" and expired.status == "expired"
    assert [e.type for e in box.events()].count("checkout.session.expired") == 2
    assert httpx.get(now.url).status_code == 410
    assert httpx.post(now.url, data={"action": "pay", "card": "4242424242424242"}).status_code == 410
    with pytest.raises(stripe.InvalidRequestError):
        box.client.v1.checkout.sessions.expire(now.id)


def test_refunds_send_charge_refunded_and_refuse_more_than_was_paid(stripe_sandbox):
    box = stripe_sandbox
    session = new_session(box, "price_morket_pack_25k")
    pay_on_page(session)
    intent = box.client.v1.checkout.sessions.retrieve(session.id).payment_intent
    box.forget_received()

    part = box.client.v1.refunds.create(params={"payment_intent": intent, "amount": 5000})
    with pytest.raises(stripe.InvalidRequestError) as too_much:
        box.client.v1.refunds.create(params={"payment_intent": intent, "amount": 15001})
    rest = box.client.v1.refunds.create(params={"payment_intent": intent, "reason": "requested_by_customer"})
    with pytest.raises(stripe.InvalidRequestError) as again:
        box.client.v1.refunds.create(params={"payment_intent": intent})

    assert part.status == "succeeded" and part.amount == 5000 and rest.amount == 15000
    assert too_much.value.code == "amount_too_large" and too_much.value.http_status == 400
    assert again.value.code == "charge_already_refunded"
    refunded = [e for e in box.events() if e.type == "charge.refunded"]
    assert [e.data.object.amount_refunded for e in refunded] == [5000, 20000]
    assert [e.data.object.refunded for e in refunded] == [False, True]
    assert refunded[0].data.previous_attributes.amount_refunded == 0
    listed = box.client.v1.refunds.list(params={"payment_intent": intent})
    assert [r.id for r in listed.data] == [rest.id, part.id]


def test_a_dispute_sends_charge_dispute_created(stripe_sandbox):
    box = stripe_sandbox
    session = new_session(box, "price_morket_pack_5k")
    pay_on_page(session)
    intent = box.client.v1.payment_intents.retrieve(box.client.v1.checkout.sessions.retrieve(session.id).payment_intent)

    box.post(f"charges/{intent.latest_charge}/dispute", reason="fraudulent")

    event = box.events()[-1]
    assert event.type == "charge.dispute.created" and event.data.object.charge == intent.latest_charge
    assert box.client.v1.charges.retrieve(intent.latest_charge).disputed is True


# -- delivery controls ----------------------------------------------------------------------------


def test_duplicates_and_resend_deliver_the_same_event_again(stripe_sandbox):
    box = stripe_sandbox
    box.post("config", duplicates=1)
    customer = box.client.v1.customers.create(params={"email": "twice@example.com"})

    events = box.events()
    assert [e.type for e in events] == ["customer.created"] * 2 and events[0].id == events[1].id
    assert events[0].data.object.id == customer.id

    box.post("config", duplicates=0)
    box.post(f"events/{events[0].id}/resend", times=3)

    assert [e.id for e in box.events()] == [events[0].id] * 5


def test_held_events_are_released_in_the_order_asked(stripe_sandbox):
    box = stripe_sandbox
    box.post("webhooks/hold")
    pay_on_page(new_session(box))
    time.sleep(0.3)
    assert box.sink.received == []
    created = [e.id for e in reversed(box.client.v1.events.list(params={"limit": 100}).data)]

    assert box.post("webhooks/release", order="reverse")["released"] == len(created)

    delivered = [e.id for e in box.events()]
    assert delivered == created[::-1]
    assert delivered[0] == box.client.v1.events.list(params={"type": "checkout.session.completed"}).data[0].id


def test_shuffle_reorders_only_the_next_batch(stripe_sandbox):
    box = stripe_sandbox
    box.post("webhooks/shuffle", seed=3)
    pay_on_page(new_session(box))
    first = box.events()
    box.forget_received()
    pay_on_page(new_session(box))
    second = box.events()

    def in_creation_order(events: list[stripe.Event]) -> bool:
        stored = [e.id for e in reversed(box.client.v1.events.list(params={"limit": 100}).data)]
        return [e.id for e in events] == [i for i in stored if i in {e.id for e in events}]

    assert len(first) == len(second) == 9
    assert not in_creation_order(first)
    assert in_creation_order(second)


def test_during_a_secret_rotation_events_verify_with_either_secret(stripe_sandbox):
    box = stripe_sandbox
    box.post("config", webhook_secret=["whsec_old_1", SECRET])
    box.client.v1.customers.create(params={"email": "rotate@example.com"})

    assert box.types() == ["customer.created"]  # verified with SECRET
    raw = box.sink.received[0]
    header = raw["headers"]["Stripe-Signature"]
    assert header.count("v1=") == 2
    assert stripe.Webhook.construct_event(raw["body"], header, "whsec_old_1").type == "customer.created"


def test_a_failing_endpoint_is_retried_until_it_answers(stripe_sandbox):
    box = stripe_sandbox
    box.post("config", retry_delays=[0.1, 0.1])
    box.sink.status = 500
    box.client.v1.customers.create(params={"email": "retry@example.com"})
    deadline = time.monotonic() + 5
    while len(box.sink.received) < 2 and time.monotonic() < deadline:
        time.sleep(0.02)
    box.sink.status = 200

    box.events()

    attempts = box.control.get("deliveries").json()
    assert [(a["attempt"], a["status"]) for a in attempts] == [(1, 500), (2, 500), (3, 200)]


# -- test clocks ----------------------------------------------------------------------------------


def test_advancing_to_the_renewal_pays_the_next_invoice(stripe_sandbox):
    box = stripe_sandbox
    clock, customer, sub = on_clock(box)
    first_end = period_end(sub)
    box.forget_received()

    box.client.v1.test_helpers.test_clocks.advance(clock, params={"frozen_time": first_end + 3600})

    events = box.events()
    paid = [e.data.object for e in events if e.type == "invoice.paid"]
    assert len(paid) == 1 and paid[0].billing_reason == "subscription_cycle" and paid[0].amount_paid == 14900
    assert paid[0].lines.data[0].period.start == first_end
    renewed = box.client.v1.subscriptions.retrieve(sub.id, params={"expand": ["latest_invoice"]})
    assert renewed.status == "active" and renewed["items"].data[0].current_period_start == first_end
    assert renewed.latest_invoice.id == paid[0].id
    updated = [e for e in events if e.type == "customer.subscription.updated"]
    assert updated[0].data.previous_attributes["items"].data[0].current_period_end == first_end
    assert events[-1].type == "test_helpers.test_clock.ready"
    invoices = box.client.v1.invoices.list(params={"customer": customer})
    assert [i.billing_reason for i in invoices.data] == ["subscription_cycle", "subscription_create"]


def test_a_declined_renewal_goes_past_due_then_is_canceled_after_the_grace_period(stripe_sandbox):
    box = stripe_sandbox
    clock, customer, sub = on_clock(box, card="4000000000000341")  # pays today, declines later
    due = period_end(sub)
    box.forget_received()

    box.client.v1.test_helpers.test_clocks.advance(clock, params={"frozen_time": due + 3600})

    types = box.types()
    assert "invoice.payment_failed" in types and "invoice.paid" not in types
    assert box.client.v1.subscriptions.retrieve(sub.id).status == "past_due"
    box.forget_received()

    box.client.v1.test_helpers.test_clocks.advance(clock, params={"frozen_time": due + 8 * DAY})

    events = box.events()
    assert [e.type for e in events].count("invoice.payment_failed") == 2  # the retries on days 3 and 6
    deleted = [e.data.object for e in events if e.type == "customer.subscription.deleted"]
    assert len(deleted) == 1 and deleted[0].status == "canceled"
    assert deleted[0].cancellation_details.reason == "payment_failed"
    assert deleted[0].ended_at == due + 7 * DAY
    assert box.client.v1.subscriptions.list(params={"customer": customer}).data == []
    assert box.client.v1.subscriptions.list(params={"customer": customer, "status": "canceled"}).data[0].id == sub.id


def test_a_new_card_recovers_a_past_due_subscription_on_the_next_retry(stripe_sandbox):
    box = stripe_sandbox
    clock, customer, sub = on_clock(box, card="4000000000000341")
    due = period_end(sub)
    box.client.v1.test_helpers.test_clocks.advance(clock, params={"frozen_time": due + 60})
    box.post(f"customers/{customer}/card", card="4242424242424242")
    box.forget_received()

    box.client.v1.test_helpers.test_clocks.advance(clock, params={"frozen_time": due + 4 * DAY})

    types = box.types()
    assert "invoice.paid" in types and "customer.subscription.deleted" not in types
    assert box.client.v1.subscriptions.retrieve(sub.id).status == "active"


def test_cancel_at_period_end_ends_the_subscription_at_the_renewal(stripe_sandbox):
    box = stripe_sandbox
    clock, _, sub = on_clock(box)
    updated = box.client.v1.subscriptions.update(sub.id, params={"cancel_at_period_end": True})
    assert updated.cancel_at == period_end(sub)
    box.forget_received()

    box.client.v1.test_helpers.test_clocks.advance(clock, params={"frozen_time": period_end(sub) + 60})

    assert box.types() == ["customer.subscription.deleted", "test_helpers.test_clock.ready"]
    assert box.client.v1.subscriptions.retrieve(sub.id).status == "canceled"


def test_deleting_a_subscription_cancels_it_now(stripe_sandbox):
    box = stripe_sandbox
    pay_on_page(session := new_session(box))
    sub_id = box.client.v1.checkout.sessions.retrieve(session.id).subscription

    canceled = box.client.v1.subscriptions.cancel(sub_id)

    assert canceled.status == "canceled" and box.events()[-1].type == "customer.subscription.deleted"
    with pytest.raises(stripe.InvalidRequestError):
        box.client.v1.subscriptions.cancel(sub_id)


def test_deleting_a_customer_ends_their_subscriptions(stripe_sandbox):
    box = stripe_sandbox
    _, customer, sub = on_clock(box)
    box.forget_received()

    deleted = box.client.v1.customers.delete(customer)

    assert deleted.deleted is True
    assert box.types() == ["customer.subscription.deleted", "customer.deleted"]
    assert box.client.v1.subscriptions.retrieve(sub.id).status == "canceled"
    with pytest.raises(stripe.InvalidRequestError):
        box.client.v1.customers.retrieve(customer)


# -- the portal -----------------------------------------------------------------------------------


def test_the_portal_cancels_at_period_end_and_switches_plan(stripe_sandbox):
    box = stripe_sandbox
    _, customer, sub = on_clock(box)
    portal = box.client.v1.billing_portal.sessions.create(
        params={"customer": customer, "return_url": "https://morket.example/billing"}
    )
    page = httpx.get(portal.url)
    assert page.status_code == 200 and "Cancel plan" in page.text and "https://morket.example/billing" in page.text
    box.forget_received()

    cancel = httpx.post(portal.url, data={"action": "cancel", "subscription": sub.id})
    switch = httpx.post(portal.url, data={"action": "switch", "subscription": sub.id, "price": "price_morket_team"})

    assert cancel.status_code == switch.status_code == 303
    assert "Renew plan" in httpx.get(portal.url).text
    fresh = box.client.v1.subscriptions.retrieve(sub.id)
    assert fresh.cancel_at_period_end is True and fresh["items"].data[0].price.id == "price_morket_team"
    types = box.types()
    assert types[:2] == ["customer.subscription.updated"] * 2
    assert {"invoice.created", "invoice.finalized", "invoice.paid", "invoice.payment_succeeded"} <= set(types[2:])
    # The switch is invoiced at once (the portal prorates with always_invoice): the old price's unused
    # time credited, the new one's remaining time charged, both proration lines.
    invoice = box.client.v1.invoices.retrieve(fresh.latest_invoice)
    assert invoice.billing_reason == "subscription_update" and invoice.status == "paid"
    credit, charge = invoice.lines.data
    assert credit.amount < 0 < charge.amount and invoice.amount_paid == credit.amount + charge.amount
    assert charge.pricing.price_details.price == "price_morket_team"
    assert credit.parent.subscription_item_details.proration and charge.parent.subscription_item_details.proration


def test_a_price_change_by_the_api_prorates_only_when_asked_to_invoice_at_once(stripe_sandbox):
    box = stripe_sandbox
    clock, _, sub = on_clock(box)
    first = sub.latest_invoice
    box.client.v1.test_helpers.test_clocks.advance(clock, params={"frozen_time": sub.start_date + 15 * 86_400})
    with pytest.raises(stripe.InvalidRequestError, match="proration_behavior"):
        box.client.v1.subscriptions.update(sub.id, params={"items": [{"price": "price_morket_team"}],
                                                           "proration_behavior": "sometimes"})  # fmt: skip
    box.forget_received()
    changed = box.client.v1.subscriptions.update(sub.id, params={"items": [{"price": "price_morket_starter"}],
                                                                 "proration_behavior": "none"})  # fmt: skip
    assert changed.latest_invoice == first and box.types() == ["customer.subscription.updated"]

    box.forget_received()
    changed = box.client.v1.subscriptions.update(sub.id, params={"items": [{"price": "price_morket_team"}],
                                                                 "proration_behavior": "always_invoice"})  # fmt: skip
    invoice = box.client.v1.invoices.retrieve(changed.latest_invoice)
    credit, charge = invoice.lines.data
    # What is left of the period by the test clock: that share of Starter's 49 dollars back, of Team's 499 due.
    item = changed["items"].data[0]
    share = (item.current_period_end - (sub.start_date + 15 * 86_400)) / (item.current_period_end - sub.start_date)
    assert 0.45 < share < 0.55 and (credit.amount, charge.amount) == (-round(4900 * share), round(49900 * share))
    assert invoice.status == "paid" and invoice.amount_paid == credit.amount + charge.amount
    assert box.types()[0] == "customer.subscription.updated" and "invoice.paid" in box.types()


# -- the API's contract ---------------------------------------------------------------------------


def test_prices_by_lookup_key_with_their_products(stripe_sandbox):
    prices = stripe_sandbox.client.v1.prices.list(
        params={"lookup_keys": ["morket_pro", "morket_pack_5k"], "active": True, "expand": ["data.product"]}
    )

    found = {p.lookup_key: p for p in prices.data}
    assert set(found) == {"morket_pro", "morket_pack_5k"}
    assert found["morket_pro"].recurring.interval == "month" and found["morket_pro"].product.name == "Pro"
    assert found["morket_pack_5k"].type == "one_time" and found["morket_pack_5k"].product.metadata["credits"] == "5000"


def test_errors_are_shaped_like_stripes(stripe_sandbox):
    box = stripe_sandbox
    cases = {
        "unknown": {"mode": "payment", "line_items": [{"price": "price_morket_pack_5k"}], "success_url": "x", "foo": 1},
        "missing": {"line_items": [{"price": "price_morket_pack_5k"}], "success_url": "x"},
        "no_price": {"mode": "payment", "line_items": [{"price": "price_nope"}], "success_url": "x"},
        "recurring": {"mode": "payment", "line_items": [{"price": "price_morket_pro"}], "success_url": "x"},
        "bad_url": {
            "mode": "payment",
            "line_items": [{"price": "price_morket_pack_5k"}],
            "success_url": "javascript:x",
        },
    }
    errors = {}
    for name, params in cases.items():
        with pytest.raises(stripe.InvalidRequestError) as caught:
            box.client.v1.checkout.sessions.create(params=params)
        errors[name] = caught.value
    with pytest.raises(stripe.InvalidRequestError) as not_found:
        box.client.v1.customers.retrieve("cus_missing")
    with pytest.raises(stripe.AuthenticationError) as bad_key:
        box.client_for("pk_live_nope").v1.customers.list()
    with pytest.raises(stripe.InvalidRequestError) as bad_expand:
        box.client.v1.customers.create(params={"email": "x@example.com", "expand": ["email"]})

    assert (errors["unknown"].code, errors["unknown"].param) == ("parameter_unknown", "foo")
    assert (errors["missing"].code, errors["missing"].param) == ("parameter_missing", "mode")
    assert (errors["no_price"].code, errors["no_price"].param) == ("resource_missing", "line_items[0][price]")
    assert "recurring price" in errors["recurring"].user_message
    assert (errors["bad_url"].code, errors["bad_url"].param) == ("url_invalid", "success_url")
    assert all(e.http_status == 400 and e.error.type == "invalid_request_error" for e in errors.values())
    assert not_found.value.http_status == 404 and not_found.value.code == "resource_missing"
    assert bad_key.value.http_status == 401
    assert bad_expand.value.param == "expand"
    assert box.client.v1.checkout.sessions.list().data == []  # nothing half-made
    assert box.client.v1.customers.list().data == []


def test_paying_an_open_invoice_with_a_declining_card_is_a_402_card_error(stripe_sandbox):
    box = stripe_sandbox
    clock, customer, sub = on_clock(box, card="4000000000000341")
    box.client.v1.test_helpers.test_clocks.advance(clock, params={"frozen_time": period_end(sub) + 60})
    invoice = box.client.v1.subscriptions.retrieve(sub.id).latest_invoice

    with pytest.raises(stripe.CardError) as declined:
        box.client.v1.invoices.pay(invoice)
    box.post(f"customers/{customer}/card", card="4242424242424242")
    paid = box.client.v1.invoices.pay(invoice)

    assert declined.value.http_status == 402 and declined.value.code == "card_declined"
    assert paid.status == "paid" and box.client.v1.subscriptions.retrieve(sub.id).status == "active"


def test_the_same_idempotency_key_answers_the_first_response(stripe_sandbox):
    box = stripe_sandbox
    params = {"mode": "payment", "line_items": [{"price": "price_morket_pack_5k"}], "success_url": "https://x/ok"}
    create = box.client.v1.checkout.sessions.create
    first = create(params=params, options={"idempotency_key": "checkout-42-1"})
    again = create(params=params, options={"idempotency_key": "checkout-42-1"})
    other = create(params=params, options={"idempotency_key": "checkout-42-2"})
    with pytest.raises(stripe.IdempotencyError):
        create(params={**params, "client_reference_id": "7"}, options={"idempotency_key": "checkout-42-1"})

    assert again.id == first.id and other.id != first.id
    assert again.last_response.headers["Idempotent-Replayed"] == "true"
    assert len(box.client.v1.checkout.sessions.list().data) == 2


def test_concurrent_calls_with_one_idempotency_key_create_one_object(stripe_sandbox):
    from concurrent.futures import ThreadPoolExecutor

    box = stripe_sandbox
    params = {"email": "once@example.com", "metadata": {"workspace_id": "42"}}

    def create(_: int) -> str:
        return box.client.v1.customers.create(params=params, options={"idempotency_key": "morket-customer-42"}).id

    with ThreadPoolExecutor(8) as pool:
        ids = set(pool.map(create, range(16)))

    assert len(ids) == 1
    assert [c.id for c in box.client.v1.customers.list().data] == list(ids)
    assert box.types() == ["customer.created"]


def test_lists_page_with_starting_after_and_has_more(stripe_sandbox):
    box = stripe_sandbox
    made = [box.client.v1.customers.create(params={"email": f"p{i}@example.com"}).id for i in range(5)]

    page = box.client.v1.customers.list(params={"limit": 2})
    after = box.client.v1.customers.list(params={"limit": 2, "starting_after": page.data[-1].id})
    every = [c.id for c in page.auto_paging_iter()]

    assert [c.id for c in page.data] == made[:-3:-1] and page.has_more is True
    assert [c.id for c in after.data] == made[2:0:-1]
    assert every == made[::-1]
    with pytest.raises(stripe.InvalidRequestError):
        box.client.v1.customers.list(params={"limit": 101})


def test_the_line_items_and_events_read_back(stripe_sandbox):
    box = stripe_sandbox
    session = new_session(box, "price_morket_pack_5k", line_items=[{"price": "price_morket_pack_5k", "quantity": 2}])
    pay_on_page(session)

    items = box.client.v1.checkout.sessions.line_items.list(session.id)
    events = box.client.v1.events.list(params={"type": "charge.*"})
    delivered = box.events()

    assert [(i.price.id, i.quantity, i.amount_total) for i in items.data] == [("price_morket_pack_5k", 2, 10000)]
    assert [e.type for e in events.data] == ["charge.succeeded"]
    assert box.client.v1.events.retrieve(delivered[-1].id).type == "checkout.session.completed"
    assert json.loads(box.sink.received[-1]["body"])["api_version"] == stripe.api_version


def test_the_hosted_page_names_the_sandbox_and_escapes_what_it_shows(stripe_sandbox):
    session = new_session(stripe_sandbox, "price_morket_pack_5k", customer_email='"><script>x</script>@e.co')

    page = httpx.get(session.url).text

    assert "Stripe sandbox" in page and "<script>x" not in page
    assert re.search(r"5,000 credits × 1", page) and "$50.00" in page


@pytest.mark.timeout(60)
def test_make_runs_sandbox_mode_points_billing_at_the_stripe_sandbox():
    server = DevServer({"PATH": "/usr/bin:/bin", "MORKET_PORT": "5999"})
    try:
        assert server.start_sandbox()
        env = server.env
        client = stripe.StripeClient(
            env["MORKET_STRIPE_SECRET_KEY"], base_addresses={"api": env["MORKET_STRIPE_API_BASE"]}
        )
        pro = client.v1.prices.retrieve("price_morket_pro")
        settings = httpx.get(env["MORKET_STRIPE_API_BASE"].replace("/stripe", "/_sandbox/stripe/state")).json()
    finally:
        server.stop_children()
    assert pro.unit_amount == 14900
    assert settings["settings"]["webhook_url"] == "http://127.0.0.1:5999/billing/stripe/webhook"
    assert settings["settings"]["webhook_secret"] == env["MORKET_STRIPE_WEBHOOK_SECRET"]


@pytest.mark.timeout(90)
def test_a_browser_subscribes_on_the_hosted_page_and_manages_the_plan_in_the_portal(stripe_sandbox):
    box = stripe_sandbox
    morket = WebhookSink().start()  # stands in for Morket's success and return pages
    customer = box.client.v1.customers.create(params={"email": "grace@example.com"})
    session = new_session(
        box, customer=customer.id, success_url=morket.url("/billing/done?session_id={CHECKOUT_SESSION_ID}")
    )
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    try:
        with chromium_page(width=1280, height=860) as page:
            page.goto(session.url)
            page.screenshot(path=str(SCREENSHOTS / "stripe-sandbox-checkout.png"))
            page.get_by_label("Visa •••• 0341").check()
            page.get_by_role("button", name="Subscribe").click()
            page.wait_for_url(re.compile(r"/billing/done\?session_id=cs_test_"))
            assert page.url.endswith(session.id)
            portal = box.client.v1.billing_portal.sessions.create(
                params={"customer": customer.id, "return_url": morket.url("/billing")}
            )
            page.goto(portal.url)
            page.get_by_role("button", name="Cancel plan").click()
            page.wait_for_load_state("load")
            assert page.get_by_role("status").inner_text() == "Your plan will be canceled at the end of the period."
            page.screenshot(path=str(SCREENSHOTS / "stripe-sandbox-portal.png"))
            assert page.problems == []
    finally:
        morket.stop()
    assert box.events()[-1].type == "customer.subscription.updated"
    sub = box.client.v1.subscriptions.list(params={"customer": customer.id}).data[0]
    assert sub.cancel_at_period_end is True and sub.default_payment_method == "pm_card_0341"
