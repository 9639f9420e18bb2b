"""A new team in a real browser: sign up, confirm, create a workspace, invite, and the invitee joins."""

import re

import pytest
from playwright.sync_api import expect

PASSWORD = "correct horse battery staple"


def _link(smtp_server, run_jobs, address: str, path: str) -> str:
    """Deliver queued mail as a worker would, and return the ``path`` link of the newest email to ``address``."""
    run_jobs()
    message = smtp_server.wait_for(address)[-1]
    match = re.search(rf"http://127\.0\.0\.1:\d+/{path}/[A-Za-z0-9._~-]+", message.text)
    assert match, f"no /{path}/ link in the email to {address}:\n{message.text}"
    return match.group(0)


def _sign_up_and_confirm(page, base_url, smtp_server, run_jobs, email: str, name: str) -> None:
    page.goto(f"{base_url}/signup")
    page.fill("#email", email)
    page.fill("#name", name)
    page.fill("#password", PASSWORD)
    page.fill("#confirm", PASSWORD)
    page.click("button:has-text('Create account')")
    expect(page).to_have_url(f"{base_url}/signup/check-inbox")
    page.goto(_link(smtp_server, run_jobs, email, "verify"))
    expect(page.locator(".flash-success")).to_contain_text("Your email is confirmed")


@pytest.mark.browser
def test_a_team_signs_up_invites_and_the_invitee_joins(live_server, browser_page, smtp_server, run_jobs, tmp_path):
    page, base = browser_page, live_server

    _sign_up_and_confirm(page, base, smtp_server, run_jobs, "olivia@example.com", "Olivia Owner")
    page.goto(f"{base}/w")
    page.fill("#create-workspace #name", "Acme Revenue")
    page.click("button:has-text('Create workspace')")
    expect(page).to_have_url(re.compile(rf"{re.escape(base)}/w/[a-z0-9-]+/$"))
    slug = page.url.rstrip("/").rsplit("/", 1)[-1]
    expect(page.locator(".ws-title")).to_have_text("Acme Revenue")

    page.click("nav[aria-label=Workspace] a:has-text('Members')")
    page.fill("#invite-member #email", "ivan@example.com")
    page.select_option("#invite-member #role", "admin")
    page.click("button:has-text('Send invitation')")
    expect(page.locator(".flash-success")).to_contain_text("Invitation sent to ivan@example.com")
    expect(page.locator("#pending-invitations")).to_contain_text("ivan@example.com")

    page.click("#user-menu summary")
    page.click("#user-menu button:has-text('Log out')")
    expect(page.locator(".flash")).to_contain_text("You are logged out")
    invitation_link = _link(smtp_server, run_jobs, "ivan@example.com", "invite")

    _sign_up_and_confirm(page, base, smtp_server, run_jobs, "ivan@example.com", "Ivan Invitee")
    page.goto(invitation_link)
    expect(page.locator("#invitation h1")).to_have_text("Join Acme Revenue")
    page.click("button:has-text('Accept and join Acme Revenue')")
    expect(page).to_have_url(f"{base}/w/{slug}/")
    expect(page.locator(".flash-success")).to_contain_text("You joined as admin")
    expect(page.locator(".ws-sub .badge")).to_have_text("Admin")

    page.goto(f"{base}/w")
    card = page.locator(".ws-card", has_text="Acme Revenue")
    expect(card.locator(".badge")).to_have_text("Admin")
    page.click(".ws-card-link:has-text('Acme Revenue')")
    page.click("nav[aria-label=Workspace] a:has-text('Members')")
    expect(page.locator("#member-rows")).to_contain_text("olivia@example.com")
    expect(page.locator("#member-rows")).to_contain_text("ivan@example.com")
    page.screenshot(path=str(tmp_path / "invitee-members.png"), full_page=True)
    assert page.problems == [], page.problems
