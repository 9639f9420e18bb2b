"""The feedback a team gets in a real browser: an invitation shown in the app after sign-up, a role
change that says it saved, and a locked account that says so on every attempt."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from tests.browser.conftest import committed_owner
from tests.browser.test_signup_invite import PASSWORD, _sign_up_and_confirm

LOCK_MESSAGE = re.compile(r"locked for now\. Try again in \d+ minutes? \(after \d\d:\d\d UTC\)")


def _log_in(page, base: str, email: str, password: str = PASSWORD) -> None:
    page.goto(f"{base}/login")
    page.fill("#email", email)
    page.fill("#password", password)
    page.click("form button[type=submit]")


def _log_out(page) -> None:
    page.click("#user-menu summary")
    page.click("#user-menu button:has-text('Log out')")
    expect(page.locator("#toasts")).to_contain_text("You are logged out")


@pytest.mark.browser
def test_invitation_in_the_app_role_change_toast_and_lock_on_every_attempt(
    app, live_server, browser_page, smtp_server, run_jobs
):
    from morket.core.ratelimit import clear_rate_limits
    from morket.extensions import db

    with app.app_context():
        committed_owner(
            email="olivia@example.com",
            name="Olivia Owner",
            slug="acme",
            workspace_name="Acme Revenue",
            password=PASSWORD,
        )
        db.session.commit()
    page, base = browser_page, live_server

    # The owner invites from the Members page, reached through the sidebar; a toast confirms it.
    _log_in(page, base, "olivia@example.com")
    page.goto(f"{base}/w/acme/")
    page.click("nav[aria-label=Workspace] a:has-text('Members')")
    page.fill("#invite-member #email", "ivan@acme.test")
    page.click("button:has-text('Send invitation')")
    expect(page.locator("#invite-member")).to_contain_text("acme.test is a reserved domain")
    page.fill("#invite-member #email", "ivan@example.com")
    page.click("button:has-text('Send invitation')")
    expect(page.locator("#toasts .toast")).to_contain_text("Invitation sent to ivan@example.com")
    _log_out(page)

    # The invitee signs up without opening the email: the app shows the invitation, and who sent it.
    _sign_up_and_confirm(page, base, smtp_server, run_jobs, "ivan@example.com", "Ivan Invitee")
    page.goto(f"{base}/w")
    invitation = page.locator("#invitations")
    expect(invitation).to_contain_text("Olivia Owner invited you to Acme Revenue as Member")
    expect(page.locator("#workspaces-empty")).to_contain_text("Join the workspace you were invited to above")
    expect(page.locator("#sidebar .sidebar-invitations .count")).to_have_text("1")
    invitation.get_by_role("link", name="Review and join Acme Revenue").click()
    expect(page.locator("#invitation-from")).to_contain_text(
        "Olivia Owner (olivia@example.com) invited ivan@example.com to the workspace Acme Revenue"
    )
    page.click("button:has-text('Accept and join Acme Revenue')")
    expect(page).to_have_url(f"{base}/w/acme/")
    expect(page.locator("#toasts")).to_contain_text("You joined as member")
    expect(page.locator("#sidebar .sidebar-invitations")).to_have_count(0)
    _log_out(page)

    # A role change saves in place (htmx) and says so in a toast.
    _log_in(page, base, "olivia@example.com")
    page.goto(f"{base}/w/acme/members")
    row = page.locator("#member-rows tr", has_text="ivan@example.com")
    row.locator("select[name=role]").select_option("admin")
    expect(page.locator("#toasts")).to_contain_text("ivan@example.com is now admin.")
    expect(page.locator("#toasts .toast-success")).to_have_attribute("role", "status")
    _log_out(page)

    # Five wrong passwords lock the account; every further attempt shows the lock and when it ends,
    # also those the per-address limit (5 a minute) answers first.
    with app.app_context():
        clear_rate_limits()
    statuses = []

    def _login_status(resp) -> None:
        if resp.url.endswith("/login") and resp.request.method == "POST":
            statuses.append(resp.status)

    page.on("response", _login_status)
    for attempt in range(1, 8):
        _log_in(page, base, "ivan@example.com", "not the password")
        if attempt < 5:
            expect(page.locator("#main .flash-error")).to_contain_text("Incorrect email or password")
        else:
            expect(page.locator("#main .flash-error")).to_contain_text(LOCK_MESSAGE)
    assert statuses[4:] == [423, 423, 423], statuses
    _log_in(page, base, "ivan@example.com")
    expect(page.locator("#main .flash-error")).to_contain_text(LOCK_MESSAGE)

    unexpected = [p for p in page.problems if not re.match(r"(401|422|423) .*/(login|w/acme/members)$", p)]
    assert unexpected == [], unexpected
