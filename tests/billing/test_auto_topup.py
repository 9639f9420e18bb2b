"""Auto top-up against the Stripe sandbox: the setting on the billing page, one off-session charge per
threshold crossing (also when checks race), credits granted only by the webhook, a decline shown
on the page and emailed to the people who manage billing."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from urllib.parse import urlsplit

import pytest
from sqlalchemy import create_engine, select, text

from morket.billing import service, topup
from morket.billing.models import BillingPurchase
from morket.core.db import utcnow
from morket.core.models import MailMessage
from morket.credits import service as credits
from tests.billing.conftest import pay_on_page
from tests.factories import csrf_token, login, workspace_with_owner

DECLINES_LATER = "4000000000000341"  # pays the checkout, declines every later charge


def _buy_pack(client, db, relay, workspace, card: str = "4242424242424242") -> None:
    token = csrf_token(client, f"/w/{workspace.slug}/billing")
    resp = client.post(f"/w/{workspace.slug}/billing/checkout", data={"csrf_token": token, "pack": "pack_5k"})
    assert resp.status_code == 303
    assert pay_on_page(resp.headers["Location"], card=card).status_code == 303
    relay.deliver(client)
    assert credits.balance(workspace.id) == 5_000


def _set(client, workspace, **form: str):
    token = csrf_token(client, f"/w/{workspace.slug}/billing")
    return client.post(f"/w/{workspace.slug}/billing/auto-topup", data={"csrf_token": token, **form})


def _topup_events(relay) -> list[str]:
    return [e.type for e in relay.client.v1.events.list(params={"type": "payment_intent.*", "limit": 100}).data]


def test_a_crossing_buys_one_pack_granted_by_the_webhook_then_at_most_once_a_day(client, db, team, stripe_relay):
    workspace = team.workspace
    login(client, team["owner"])
    _buy_pack(client, db, stripe_relay, workspace)
    resp = _set(client, workspace, pack="pack_5k", threshold="6,000")
    assert resp.status_code == 303
    page = client.get(urlsplit(resp.headers["Location"]).path).get_data(as_text=True)
    assert "Auto top-up on: 5,000 credits when the balance falls below 6,000 credits." in page
    db.session.commit()

    first = topup.check(workspace.id)
    assert first.result == "charged" and first.payment_intent
    assert credits.balance(workspace.id) == 5_000  # nothing granted before Stripe reports the payment
    assert topup.check(workspace.id).result == "spent"  # the same crossing never buys twice

    answers = stripe_relay.deliver(client)
    assert ("payment_intent.succeeded", 200, {"received": True, "status": "processed"}) in answers
    stripe_relay.deliver(client, again=True, reverse=True)  # Stripe resends: still one grant
    assert credits.balance(workspace.id) == 10_000
    purchase = db.session.scalar(select(BillingPurchase).where(BillingPurchase.stripe_ref == first.payment_intent))
    assert purchase.kind == "pack" and purchase.payment_intent == first.payment_intent and purchase.credits == 5_000

    assert topup.check(workspace.id).result == "above"  # the crossing is over
    credits.adjust(workspace.id, -9_500, idempotency_key="test-spend", actor_id=None, note="spent")
    db.session.commit()
    assert topup.check(workspace.id).result == "daily"  # a new crossing, but within a day of the last top-up
    account = service.get_account(workspace.id)
    account.last_topup_at = utcnow() - timedelta(days=1, minutes=1)
    db.session.commit()
    second = topup.check(workspace.id)
    assert second.result == "charged" and second.payment_intent != first.payment_intent
    stripe_relay.deliver(client)
    assert credits.balance(workspace.id) == 5_500
    assert _topup_events(stripe_relay).count("payment_intent.succeeded") == 3  # the checkout's and two top-ups'


def test_the_debit_that_crosses_the_threshold_starts_one_top_up_without_the_periodic_job(
    client, db, team, stripe_relay, run_jobs
):
    from morket.core.jobs import get_queue

    workspace = team.workspace
    login(client, team["owner"])
    _buy_pack(client, db, stripe_relay, workspace)
    assert _set(client, workspace, pack="pack_5k", threshold="3000").status_code == 303
    db.session.commit()
    run_jobs()  # what the purchase queued (its emails)
    queue = get_queue("default")
    job_id = f"auto-topup-{workspace.id}"

    credits.charge(workspace.id, 1_500, idempotency_key="debit-1", provider="hunter")
    db.session.commit()
    assert queue.fetch_job(job_id) is None  # 3,500: still above the threshold

    credits.charge(workspace.id, 2_000, idempotency_key="debit-2", provider="hunter")
    db.session.rollback()
    assert queue.fetch_job(job_id) is None  # a crossing that rolled back starts nothing

    credits.charge(workspace.id, 1_000, idempotency_key="debit-3", provider="hunter")
    assert queue.fetch_job(job_id) is None  # not before the commit
    db.session.commit()
    assert queue.job_ids == [job_id]  # 2,500: the crossing queued its check at once
    credits.charge_many(workspace.id, [credits.Charge(250, "debit-4"), credits.Charge(250, "debit-5")])
    db.session.commit()
    assert queue.job_ids == [job_id]  # still below: the same crossing, nothing more
    assert credits.balance(workspace.id) == 2_000 and stripe_relay.deliver(client) == []

    assert run_jobs() == 1  # the queued check, not the periodic job
    account = service.get_account(workspace.id)
    assert account.auto_topup_spent is True
    stripe_relay.deliver(client)
    assert credits.balance(workspace.id) == 7_000  # granted by Stripe's webhook, once
    assert _topup_events(stripe_relay).count("payment_intent.succeeded") == 2  # the checkout's and one top-up
    assert topup.check(workspace.id).result == "above"


def test_a_declined_top_up_shows_on_the_page_and_emails_owners_once(client, db, team, stripe_relay):
    workspace = team.workspace
    login(client, team["billing_admin"])
    _buy_pack(client, db, stripe_relay, workspace, card=DECLINES_LATER)
    assert _set(client, workspace, pack="pack_25k", threshold="10000").status_code == 303
    db.session.commit()

    found = topup.check(workspace.id)
    assert found.result == "declined" and "declined" in found.message
    answers = stripe_relay.deliver(client)
    assert ("payment_intent.payment_failed", 200, {"received": True, "status": "processed"}) in answers
    stripe_relay.deliver(client, again=True)
    assert credits.balance(workspace.id) == 5_000
    assert topup.check(workspace.id).result == "spent"  # a declined card is not charged again this crossing

    page = client.get(f"/w/{workspace.slug}/billing").get_data(as_text=True)
    assert 'id="auto-topup-failed"' in page and "Auto top-up failed: Your card was declined." in page
    mails = db.session.scalars(select(MailMessage).where(MailMessage.subject.like("Auto top-up failed%"))).all()
    assert sorted(m.to_address for m in mails) == sorted([team["owner"].email, team["billing_admin"].email])


def test_the_setting_is_validated_and_only_for_billing_managers(client, db, team, stripe_relay):
    workspace = team.workspace
    login(client, team["owner"])
    resp = _set(client, workspace, pack="pack_5k", threshold="1000")
    assert resp.status_code == 303  # no checkout yet: no card to charge
    page = client.get(f"/w/{workspace.slug}/billing").get_data(as_text=True)
    assert "Buy a plan or a credit pack once first" in page
    assert getattr(service.get_account(workspace.id), "auto_topup_pack", None) is None

    _buy_pack(client, db, stripe_relay, workspace)
    for bad in ("-1", "lots", "99999999999"):
        _set(client, workspace, pack="pack_5k", threshold=bad)
        assert service.get_account(workspace.id).auto_topup_threshold is None, bad
    _set(client, workspace, pack="pack_9k", threshold="1000")
    assert service.get_account(workspace.id).auto_topup_pack is None
    _set(client, workspace, pack="pack_5k", threshold="1000")
    account = service.get_account(workspace.id)
    assert (account.auto_topup_pack, account.auto_topup_threshold) == ("pack_5k", 1000)
    _set(client, workspace, pack="", threshold="1000")
    assert service.get_account(workspace.id).auto_topup_pack is None

    # No CSRF token: refused.
    resp = client.post(f"/w/{workspace.slug}/billing/auto-topup", data={"pack": "pack_5k", "threshold": "5"})
    assert resp.status_code == 400
    # Members who do not manage billing, and another workspace's owner, get 404.
    other, stranger = workspace_with_owner(name="Other Co")
    db.session.flush()
    login(client, stranger)
    token = csrf_token(client, f"/w/{other.slug}/billing")
    resp = client.post(f"/w/{workspace.slug}/billing/auto-topup",
                       data={"csrf_token": token, "pack": "pack_5k", "threshold": "5"})  # fmt: skip
    assert resp.status_code == 404
    for role in ("member", "viewer"):
        login(client, team[role])
        token = csrf_token(client, f"/w/{workspace.slug}/")
        resp = client.post(f"/w/{workspace.slug}/billing/auto-topup",
                           data={"csrf_token": token, "pack": "pack_5k", "threshold": "5"})  # fmt: skip
        assert resp.status_code == 404, role
    assert service.get_account(workspace.id).auto_topup_pack is None


@pytest.fixture
def committed_workspace(app, database_url, stripe_relay):
    """A committed workspace whose Stripe customer has a saved card and auto top-up on (balance 0)."""
    from morket.extensions import db

    with app.app_context():
        workspace, _ = workspace_with_owner(name="Race Co")
        db.session.flush()
        customer = stripe_relay.client.v1.customers.create(params={"email": "race@example.com"})
        stripe_relay.post(f"customers/{customer.id}/card", card="4242424242424242")
        account = service.ensure_account(workspace.id)
        account.stripe_customer_id = customer.id
        account.auto_topup_pack = "pack_5k"
        account.auto_topup_threshold = 1_000
        db.session.commit()
        workspace_id = workspace.id
        db.session.remove()
    yield workspace_id
    engine = create_engine(database_url)
    with engine.begin() as conn:
        conn.execute(text("TRUNCATE users, workspaces, billing_events CASCADE"))
    engine.dispose()


def test_checks_racing_on_one_crossing_buy_once(app, committed_workspace, stripe_relay):
    from morket.extensions import db

    def run(_: int) -> str:
        with app.app_context():
            try:
                return topup.check(committed_workspace).result
            finally:
                db.session.remove()

    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(run, range(8)))
    assert sorted(results) == ["charged"] + ["spent"] * 7, results
    assert _topup_events(stripe_relay) == ["payment_intent.succeeded"]
    with app.app_context():
        assert service.get_account(committed_workspace).auto_topup_spent is True
        assert topup.due_workspaces() == []
        db.session.remove()


def test_the_periodic_job_buys_for_due_workspaces_once(app, committed_workspace, stripe_relay):
    from morket.billing import tasks
    from morket.extensions import db

    with app.app_context():
        assert topup.due_workspaces() == [committed_workspace]
        assert tasks.check_auto_topups() == 1
        assert tasks.check_auto_topups() == 0  # bought for this crossing: not due any more
        db.session.remove()
    assert _topup_events(stripe_relay) == ["payment_intent.succeeded"]


def _bearer(user, workspace, role: str) -> dict[str, str]:
    from morket.api.tokens import encode_access_token

    return {"Authorization": f"Bearer {encode_access_token(user.id, workspace.id, role)}"}


def test_the_setting_in_the_api_for_billing_managers_only(client, db, team, stripe_relay, run_jobs):
    workspace = team.workspace
    url = "/api/v1/billing/auto-topup"
    owner = _bearer(team["owner"], workspace, "owner")
    on = {"enabled": True, "pack": "pack_5k", "threshold": 2_500}
    assert client.get(url, headers=owner).get_json()["data"] == {
        "enabled": False, "pack": None, "threshold": None, "bought_for_this_crossing": False,
        "last_topup_at": None, "last_result": None,
    }  # fmt: skip
    resp = client.put(url, json=on, headers=owner)
    assert resp.status_code == 422 and "Buy a plan or a credit pack once first" in resp.get_json()["error"]["message"]
    assert service.get_account(workspace.id) is None  # a refusal leaves nothing behind

    login(client, team["owner"])
    _buy_pack(client, db, stripe_relay, workspace)
    admin = _bearer(team["billing_admin"], workspace, "billing_admin")
    resp = client.put(url, json=on, headers=admin)
    assert resp.status_code == 200 and resp.get_json()["data"]["enabled"] is True
    assert client.get(url, headers=owner).get_json()["data"]["threshold"] == 2_500
    for bad in (
        {**on, "threshold": -1},
        {**on, "threshold": 10_000_001},
        {**on, "threshold": "100"},
        {**on, "pack": "pack_9k"},
        {"enabled": True, "pack": "pack_5k"},
        {"enabled": "yes", "pack": "pack_5k", "threshold": 5},
        {**on, "extra": 1},
    ):
        resp = client.put(url, json=bad, headers=owner)
        assert resp.status_code == 422, bad
    account = service.get_account(workspace.id)
    assert (account.auto_topup_pack, account.auto_topup_threshold) == ("pack_5k", 2_500)

    # Members and viewers: 404 as if the setting did not exist; another workspace's token reaches its own.
    for role in ("member", "viewer"):
        headers = _bearer(team[role], workspace, role)
        assert client.get(url, headers=headers).status_code == 404, role
        assert client.put(url, json={"enabled": False}, headers=headers).status_code == 404, role
    other, stranger = workspace_with_owner(name="Other Co")
    db.session.flush()
    resp = client.put(url, json={"enabled": False}, headers=_bearer(stranger, other, "owner"))
    assert resp.status_code == 200
    assert service.get_account(workspace.id).auto_topup_pack == "pack_5k"

    # The setting at work: a debit below 2,500 buys the pack, and the API says how it went.
    credits.charge(workspace.id, 3_000, idempotency_key="api-debit", provider="hunter")
    db.session.commit()
    run_jobs()
    stripe_relay.deliver(client)
    found = client.get(url, headers=owner).get_json()["data"]
    assert found["bought_for_this_crossing"] is True and found["last_topup_at"] is not None
    assert found["last_result"] == "Auto top-up 5,000 credits: granted" and credits.balance(workspace.id) == 7_000

    resp = client.put(url, json={"enabled": False}, headers=owner)
    assert resp.status_code == 200 and resp.get_json()["data"]["enabled"] is False
    assert service.get_account(workspace.id).auto_topup_pack is None
