"""The Stripe webhook endpoint: signatures verified on the raw body, every event id applied once.

These tests sign their own events (Stripe's scheme) and need no Stripe: an event type Morket does
not act on is still recorded once, and a refused request writes nothing at all.
"""

from __future__ import annotations

import time

from sqlalchemy import func, select

from morket.billing.models import BillingEvent
from tests.billing.conftest import event_body, post_event, sign


def _events(db, event_id=None) -> list[BillingEvent]:
    stmt = select(BillingEvent)
    if event_id:
        stmt = stmt.where(BillingEvent.stripe_event_id == event_id)
    return list(db.session.scalars(stmt))


def test_a_signed_event_is_recorded_once_however_often_it_comes(client, db, stripe_settings):
    body = event_body("customer.created", {"id": "cus_1", "object": "customer"}, event_id="evt_once")
    first = post_event(client, body)
    assert first.status_code == 200 and first.get_json() == {"received": True, "status": "ignored"}
    for _ in range(3):
        again = post_event(client, body)
        assert again.status_code == 200 and again.get_json()["status"] == "duplicate"
    rows = _events(db, "evt_once")
    assert len(rows) == 1 and rows[0].status == "ignored" and rows[0].processed_at is not None


def test_bad_signatures_are_400_and_write_nothing(client, db, stripe_settings):
    body = event_body("customer.created", {"id": "cus_2", "object": "customer"}, event_id="evt_refused")
    cases = {
        "wrong secret": sign(body, secret="whsec_not_ours"),
        "older than 5 minutes": sign(body, timestamp=int(time.time()) - 301),
        "garbage": "t=1,v1=00",
        "missing": None,
    }
    for case, header in cases.items():
        resp = post_event(client, body, header)
        assert resp.status_code == 400, case
        assert resp.get_json()["error"]["code"] == "bad_signature", case
    tampered = body.replace(b"cus_2", b"cus_3")
    resp = post_event(client, tampered, sign(body))
    assert resp.status_code == 400
    assert db.session.scalar(select(func.count()).select_from(BillingEvent)) == 0


def test_a_body_that_is_not_json_is_400(client, db, stripe_settings):
    body = b"not json at all"
    resp = post_event(client, body, sign(body))
    assert resp.status_code == 400 and "not a Stripe event" in resp.get_json()["error"]["message"]


def test_without_a_webhook_secret_billing_is_off(client, db, app, monkeypatch):
    monkeypatch.setitem(app.config["MORKET"], "STRIPE_WEBHOOK_SECRET", "")
    body = event_body("customer.created", {"id": "cus_4"})
    resp = post_event(client, body)
    assert resp.status_code == 503 and not _events(db)


def test_the_endpoint_needs_no_csrf_token_but_only_takes_post(client, db, stripe_settings):
    # The test app keeps CSRF on: a browser form without a token would be refused with 400.
    assert client.get("/billing/stripe/webhook").status_code == 405
    body = event_body("customer.created", {"id": "cus_5"})
    assert post_event(client, body).status_code == 200
