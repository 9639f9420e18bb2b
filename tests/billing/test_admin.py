"""The admin console's billing: a workspace's plan, Stripe ids, purchases and events; a refund with
a reason (the credits come back out when Stripe reports it); invisible to everyone else."""

from __future__ import annotations

from sqlalchemy import select

from morket.billing import service
from morket.billing.models import BillingPurchase
from morket.core.models import AuditEvent
from morket.credits import service as credits
from tests.billing.conftest import pay_on_page
from tests.factories import csrf_token, login


def test_an_admin_sees_billing_and_refunds_a_pack_with_a_reason(client, new_client, db, team, stripe_relay, admin_user):
    workspace = team.workspace
    buyer = new_client()
    login(buyer, team["owner"])
    token = csrf_token(buyer, f"/w/{workspace.slug}/billing")
    resp = buyer.post(f"/w/{workspace.slug}/billing/checkout", data={"csrf_token": token, "pack": "pack_5k"})
    assert pay_on_page(resp.headers["Location"]).status_code == 303
    stripe_relay.deliver(buyer)
    assert credits.balance(workspace.id) == 5_000
    purchase = db.session.scalar(select(BillingPurchase).where(BillingPurchase.workspace_id == workspace.id))

    login(client, admin_user)
    page = client.get(f"/admin/workspaces/{workspace.id}").get_data(as_text=True)
    account = service.get_account(workspace.id)
    assert 'id="admin-billing-plan">Free<' in page and account.stripe_customer_id in page
    assert "checkout.session.completed" in page and purchase.stripe_ref in page

    refund_path = f"/admin/workspaces/{workspace.id}/billing/purchases/{purchase.id}/refund"
    token = csrf_token(client, f"/admin/workspaces/{workspace.id}")
    refused = client.post(refund_path, data={"csrf_token": token, "reason": "  "})
    assert "Say why the purchase is refunded" in client.get(refused.headers["Location"]).get_data(as_text=True)
    assert stripe_relay.client.v1.refunds.list().data == []

    done = client.post(refund_path, data={"csrf_token": token, "reason": "Bought by mistake"})
    assert done.status_code == 303
    assert credits.balance(workspace.id) == 5_000  # not until Stripe reports the refund
    stripe_relay.deliver(buyer)
    assert credits.balance(workspace.id) == 0
    audit = db.session.scalar(select(AuditEvent).where(AuditEvent.action == "billing.refunded"))
    assert audit.data["reason"] == "Bought by mistake" and audit.actor_id == admin_user.id


def test_the_refund_route_is_a_404_for_workspace_owners(new_client, db, team):
    owner = new_client()
    login(owner, team["owner"])
    for headers in ({}, {"X-CSRFToken": csrf_token(owner, f"/w/{team.workspace.slug}/billing")}):
        resp = owner.post(f"/admin/workspaces/{team.workspace.id}/billing/purchases/1/refund", headers=headers)
        assert resp.status_code == 404
