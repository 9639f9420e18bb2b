"""One event delivered many times at once to a live server (threads, each its own connection):
exactly one grant, every delivery answered 200, one processed and the rest duplicates."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor

import httpx
import stripe
from sqlalchemy import create_engine, text

from tests.billing.conftest import WEBHOOK_PATH, WEBHOOK_SECRET, pay_on_page
from tests.browser.conftest import committed_owner, live_server  # noqa: F401 - the live server fixture
from tests.factories import PASSWORD
from tests.support.sandbox import WebhookSink

COPIES = 8


def test_the_same_event_at_once_from_many_connections_grants_once(app, database_url, stripe_env, live_server):  # noqa: F811
    from morket.extensions import db

    with app.app_context():
        workspace, _ = committed_owner(
            email="rae@example.com", name="Rae", slug="rae-co", workspace_name="Rae Co", password=PASSWORD
        )
        db.session.commit()
        workspace_id = workspace.id
    sink = WebhookSink().start()
    try:
        stripe_env.post("config", json={"webhook_url": sink.url(WEBHOOK_PATH), "webhook_secret": WEBHOOK_SECRET})
        api = str(stripe_env.base_url).rstrip("/").replace("/_sandbox/stripe", "/stripe")
        client = stripe.StripeClient("sk_test_morket_browser", base_addresses={"api": api}, max_network_retries=0)
        session = client.v1.checkout.sessions.create(
            params={
                "mode": "payment",
                "line_items": [{"price": "price_morket_pack_5k", "quantity": 1}],
                "client_reference_id": str(workspace_id),
                "success_url": f"{live_server}/done",
                "cancel_url": f"{live_server}/cancel",
            }
        )
        assert pay_on_page(session.url).status_code == 303
        assert stripe_env.post("webhooks/wait", json={"timeout": 15}).json()["idle"]
        completed = [r for r in sink.received if json.loads(r["body"])["type"] == "checkout.session.completed"][0]
    finally:
        sink.stop()

    def deliver(_: int) -> tuple[int, str]:
        resp = httpx.post(
            live_server + WEBHOOK_PATH,
            content=completed["body"],
            headers={"Content-Type": "application/json", "Stripe-Signature": completed["headers"]["Stripe-Signature"]},
            timeout=30,
        )
        return resp.status_code, resp.json().get("status", "")

    with ThreadPoolExecutor(COPIES) as pool:
        answers = list(pool.map(deliver, range(COPIES)))
    assert [code for code, _ in answers] == [200] * COPIES, answers
    assert sorted(status for _, status in answers) == ["duplicate"] * (COPIES - 1) + ["processed"]
    engine = create_engine(database_url)
    with engine.connect() as conn:
        balance = conn.execute(text("SELECT balance FROM credit_balances WHERE workspace_id = :w"), {"w": workspace_id})
        grants = conn.execute(
            text("SELECT count(*) FROM credit_ledger WHERE workspace_id = :w AND kind = 'grant'"), {"w": workspace_id}
        )
        assert balance.scalar() == 5_000 and grants.scalar() == 1
    engine.dispose()
