"""Who reaches billing (owners, admins, billing admins; others get 404), its page and API, and the
plan limits where the features are (seats at invitations, CRM sync at connect)."""

from __future__ import annotations

from sqlalchemy import func, select

from morket.api.tokens import encode_access_token
from morket.billing import service
from morket.credits import service as credits
from morket.workspaces.models import Invitation
from tests.factories import csrf_token, login, workspace_with_owner

BILLING_ROLES = ("owner", "admin", "billing_admin")


def _bearer(user, workspace, role: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {encode_access_token(user.id, workspace.id, role)}"}


def test_only_billing_roles_see_billing_and_others_get_404(new_client, db, team):
    workspace = team.workspace
    for role, user in team.items():
        browser = new_client()
        login(browser, user)
        page = browser.get(f"/w/{workspace.slug}/billing")
        api = browser.get("/api/v1/billing", headers=_bearer(user, workspace, role))
        overview = browser.get(f"/w/{workspace.slug}/").get_data(as_text=True)
        if role in BILLING_ROLES:
            assert page.status_code == 200 and api.status_code == 200, role
            assert f'href="/w/{workspace.slug}/billing"' in overview, role
        else:
            assert page.status_code == 404 and api.status_code == 404, role
            assert api.get_json()["error"]["code"] == "not_found"
            assert f'href="/w/{workspace.slug}/billing"' not in overview, role


def test_a_billing_admin_reaches_billing_and_credits_and_nothing_else(new_client, db, team):
    workspace = team.workspace
    browser = new_client()
    login(browser, team["billing_admin"])
    assert browser.get(f"/w/{workspace.slug}/credits").status_code == 200
    for path in ("tables", "webhooks", "credentials"):
        assert browser.get(f"/w/{workspace.slug}/{path}").status_code == 403, path


def test_another_workspace_gets_404(new_client, db, team):
    other, outsider = workspace_with_owner(name="Elsewhere")
    browser = new_client()
    login(browser, outsider)
    assert browser.get(f"/w/{team.workspace.slug}/billing").status_code == 404
    token = csrf_token(browser, f"/w/{other.slug}/billing")
    resp = browser.post(f"/w/{team.workspace.slug}/billing/checkout", data={"csrf_token": token, "plan": "pro"})
    assert resp.status_code == 404
    assert service.get_account(team.workspace.id) is None


def test_checkout_without_a_csrf_token_is_refused(client, db, team, stripe_settings):
    login(client, team["owner"])
    resp = client.post(f"/w/{team.workspace.slug}/billing/checkout", data={"plan": "pro"})
    assert resp.status_code == 400
    assert service.get_account(team.workspace.id) is None  # no customer was made


def test_the_page_and_api_show_this_periods_usage_by_provider(client, db, team):
    workspace = team.workspace
    credits.grant(workspace.id, 100, idempotency_key="t:grant", note="t")
    credits.charge(workspace.id, 3, idempotency_key="t:1", provider="hunter", operation="hunter.email_finder")
    credits.charge(workspace.id, 2, idempotency_key="t:2", provider="apollo", operation="apollo.people_match")
    credits.charge(workspace.id, 2, idempotency_key="t:3", provider="hunter", operation="hunter.email_finder")
    login(client, team["billing_admin"])
    page = client.get(f"/w/{workspace.slug}/billing").get_data(as_text=True)
    assert "7 credits charged since" in page and 'id="usage-provider"' in page
    body = client.get("/api/v1/billing", headers=_bearer(team["owner"], workspace, "owner")).get_json()["data"]
    assert body["plan"]["key"] == "free" and body["balance"] == 93 and body["usage_total"] == 7
    assert body["usage_by_provider"] == [{"label": "hunter", "credits": 5}, {"label": "apollo", "credits": 2}]
    assert body["usage_by_user"] == [{"label": "Automations", "credits": 7}]
    packs = client.get("/api/v1/billing/packs", headers=_bearer(team["owner"], workspace, "owner")).get_json()
    assert [p["credits"] for p in packs["data"]] == [5_000, 25_000]
    invoices = client.get("/api/v1/billing/invoices", headers=_bearer(team["owner"], workspace, "owner")).get_json()
    assert invoices["data"] == []  # no Stripe customer yet: nothing to ask Stripe


def test_the_seat_limit_refuses_an_invitation_with_an_upgrade_message(client, db, team, stripe_settings):
    workspace = team.workspace  # five members: over the free plan's two seats
    resp = client.post(
        "/api/v1/invitations",
        json={"email": "one.more@example.com", "role": "member"},
        headers=_bearer(team["owner"], workspace, "owner"),
    )
    assert resp.status_code == 402
    assert resp.get_json()["error"]["message"] == (
        "The Free plan does not allow more than 2 seats. Upgrade to Pro on the Billing page."
    )
    assert db.session.scalar(select(func.count()).select_from(Invitation)) == 0
    service.ensure_account(workspace.id).plan = "team"  # unlimited seats
    db.session.flush()
    resp = client.post(
        "/api/v1/invitations",
        json={"email": "one.more@example.com", "role": "member"},
        headers=_bearer(team["owner"], workspace, "owner"),
    )
    assert resp.status_code == 201


def test_crm_sync_needs_a_plan_that_includes_it(client, db, team, stripe_settings):
    login(client, team["owner"])
    slug = team.workspace.slug
    token = csrf_token(client, f"/w/{slug}/billing")
    resp = client.post(f"/w/{slug}/connections/hubspot/connect", data={"csrf_token": token})
    assert resp.status_code == 303
    page = client.get(resp.headers["Location"]).get_data(as_text=True)
    assert "The Free plan does not allow CRM sync. Upgrade to Pro on the Billing page." in page


def test_without_billing_set_up_no_plan_limit_applies(client, db, team):
    service.check_seats(team.workspace.id, 50)
    service.check_feature(team.workspace.id, "crm_sync")
    service.check_run(team.workspace.id, 1_000_000)


def test_without_billing_set_up_a_checkout_is_a_409_naming_why(client, db, team):
    resp = client.post(
        "/api/v1/billing/checkout", json={"plan": "pro"}, headers=_bearer(team["owner"], team.workspace, "owner")
    )
    assert resp.status_code == 409
    assert resp.get_json()["error"]["message"].startswith("Billing is not set up on this Morket server")
    assert service.get_account(team.workspace.id) is None
