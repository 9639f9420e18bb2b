"""Members and API keys in a real browser: the htmx role change and removal, and the one-time key."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect
from sqlalchemy import select

from morket.extensions import db
from morket.workspaces.models import Membership
from tests.browser.conftest import browser_page, live_server  # noqa: F401 - fixtures shared with tests/browser
from tests.factories import PASSWORD, MembershipFactory, workspace_with_owner


@pytest.mark.browser
def test_owner_changes_a_role_removes_a_member_and_creates_a_key(app, live_server, browser_page):  # noqa: F811
    page, base = browser_page, live_server
    # The live server has its own connections: commit the team for real (live_server truncates after).
    with app.app_context():
        workspace, owner = workspace_with_owner(name="Acme Revenue")
        viewer = MembershipFactory(workspace=workspace, role="viewer")
        member = MembershipFactory(workspace=workspace, role="member")
        db.session.commit()
        slug, owner_email, viewer_id, member_id = workspace.slug, owner.email, viewer.id, member.id
        db.session.remove()

    page.goto(f"{base}/login")
    page.fill("#email", owner_email)
    page.fill("#password", PASSWORD)
    page.click("button:has-text('Log in')")
    page.goto(f"{base}/w/{slug}/members")

    page.select_option(f"#role-{viewer_id}", "admin")
    expect(page.locator(f"#role-{viewer_id}")).to_have_value("admin")
    page.once("dialog", lambda dialog: dialog.accept())
    page.click(f"#member-{member_id} button:has-text('Remove')")
    expect(page.locator(f"#member-{member_id}")).to_have_count(0)
    with app.app_context():
        assert db.session.get(Membership, viewer_id).role == "admin"
        assert db.session.scalar(select(Membership).where(Membership.id == member_id)) is None
        db.session.remove()

    page.click("nav[aria-label=Workspace] a:has-text('API keys')")
    page.fill("#create-api-key #name", "CRM sync")
    page.click("button:has-text('Create key')")
    plaintext = page.locator("#new-api-key-value").input_value()
    assert plaintext.startswith("mk_live_")
    page.goto(f"{base}/w/{slug}/api-keys")
    expect(page.locator("#new-api-key-value")).to_have_count(0)
    expect(page.locator("#api-keys")).to_contain_text(plaintext[:16] + "…")
    assert plaintext not in page.content()
    expect(page.locator("#api-keys")).to_contain_text("CRM sync")
    assert page.problems == [], page.problems
