"""In a real browser against a live server and the Stripe sandbox: a billing admin buys Pro on the
hosted checkout page, comes back to a note that grants nothing, and the plan arrives by webhook."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from tests.billing.conftest import WEBHOOK_PATH, WEBHOOK_SECRET
from tests.browser.conftest import browser_page, committed_owner, live_server  # noqa: F401 - the browser fixtures
from tests.factories import PASSWORD

SCREENSHOTS = "test-artifacts/screenshots"


def _committed_billing_admin(app) -> str:
    from morket.accounts.models import User
    from morket.core.db import utcnow
    from morket.core.security import hash_password
    from morket.extensions import db
    from morket.workspaces.models import Membership

    with app.app_context():
        workspace, _ = committed_owner(
            email="otto@example.com", name="Otto", slug="otto-co", workspace_name="Otto Co", password=PASSWORD
        )
        bill = User(email="bea@example.com", name="Bea", password_hash=hash_password(PASSWORD),
                    email_verified_at=utcnow())  # fmt: skip
        db.session.add(bill)
        db.session.flush()
        db.session.add(Membership(workspace_id=workspace.id, user_id=bill.id, role="billing_admin"))
        db.session.commit()
        return workspace.slug


@pytest.mark.browser
def test_a_billing_admin_buys_pro_on_the_checkout_page(app, stripe_env, live_server, browser_page):  # noqa: F811
    stripe_env.post("config", json={"webhook_url": live_server + WEBHOOK_PATH, "webhook_secret": WEBHOOK_SECRET})
    stripe_env.post("webhooks/hold").raise_for_status()  # the redirect back comes first, as it can in life
    slug = _committed_billing_admin(app)
    page, base = browser_page, live_server
    page.goto(f"{base}/login")
    page.fill("#email", "bea@example.com")
    page.fill("#password", PASSWORD)
    page.click("form button[type=submit]")
    page.goto(f"{base}/w/{slug}/")
    page.click("nav[aria-label=Workspace] >> text=Billing")
    expect(page.locator("#current-plan")).to_have_text("Free")
    page.screenshot(path=f"{SCREENSHOTS}/billing-free.png", full_page=True)

    page.click("#plan-pro button[type=submit]")
    expect(page.locator("button[value=pay]")).to_be_visible()
    page.fill("#email", "bea@example.com")
    page.click("button[value=pay]")
    expect(page.locator("#checkout-returned")).to_contain_text("Stripe is confirming the payment")
    expect(page.locator("#current-plan")).to_have_text("Free")  # the redirect alone granted nothing
    expect(page.locator("#billing-balance")).to_have_text("0")

    stripe_env.post("webhooks/release", json={"order": "shuffle", "seed": 7}).raise_for_status()
    assert stripe_env.post("webhooks/wait", json={"timeout": 15}).json()["idle"]
    page.goto(f"{base}/w/{slug}/billing")
    expect(page.locator("#current-plan")).to_have_text("Pro")
    expect(page.locator("#billing-balance")).to_have_text("20,000")
    expect(page.locator("#renewal-date")).to_be_visible()
    expect(page.locator("#billing-invoices tbody tr")).to_have_count(1)
    page.screenshot(path=f"{SCREENSHOTS}/billing-pro.png", full_page=True)

    # Auto top-up is set on the same page: a pack and a threshold, saved with a confirmation.
    page.select_option("#auto-topup-form select[name=pack]", "pack_5k")
    page.fill("#auto-topup-form input[name=threshold]", "2500")
    page.click("#auto-topup-form button[type=submit]")
    page.wait_for_load_state("load")
    expect(page.locator("body")).to_contain_text("Auto top-up on: 5,000 credits when the balance falls below 2,500")
    expect(page.locator("#auto-topup-form select[name=pack]")).to_have_value("pack_5k")
    page.locator("#billing-auto-topup").screenshot(path=f"{SCREENSHOTS}/billing-auto-topup.png")
    deliveries = stripe_env.get("deliveries").json()
    assert deliveries and all(d["status"] == 200 for d in deliveries), deliveries
    assert page.problems == []
