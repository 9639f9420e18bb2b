"""The admin console in a real browser: log in as a platform admin, find a user, disable them after confirming."""

from datetime import UTC, datetime

import pytest
from playwright.sync_api import expect

PASSWORD = "admin console passphrase"


def _committed_users(app) -> None:
    from morket.accounts.models import User
    from morket.core.security import hash_password
    from morket.extensions import db

    now = datetime.now(UTC)
    with app.app_context():
        db.session.add_all(
            [
                User(
                    email="rita@example.com",
                    name="Rita Root",
                    password_hash=hash_password(PASSWORD),
                    email_verified_at=now,
                    is_platform_admin=True,
                ),
                User(email="sam@example.com", name="Sam Spammer", password_hash="!", email_verified_at=now),
                User(email="nina@example.com", name="Nina New", password_hash="!"),
            ]
        )
        db.session.commit()


@pytest.mark.browser
def test_an_admin_finds_and_disables_a_user_after_confirming(app, live_server, browser_page, tmp_path):
    _committed_users(app)
    page, base = browser_page, live_server
    page.goto(f"{base}/login")
    page.fill("#email", "rita@example.com")
    page.fill("#password", PASSWORD)
    page.click("form button[type=submit]")
    page.click("#sidebar a:has-text('Admin console')")
    expect(page).to_have_url(f"{base}/admin")
    expect(page.locator(".admin-nav a[aria-current=page]")).to_have_text("Users")

    page.fill("#admin-search-q", "sam")
    page.click(".admin-search button")
    rows = page.locator("#admin-users tbody tr")
    expect(rows).to_have_count(1)
    expect(rows.first).to_contain_text("sam@example.com")

    page.once("dialog", lambda dialog: dialog.dismiss())
    rows.first.locator("button:has-text('Disable')").click()
    expect(rows.first.locator(".badge.danger")).to_have_count(0)

    messages = []
    page.once("dialog", lambda dialog: (messages.append(dialog.message), dialog.accept()))
    rows.first.locator("button:has-text('Disable')").click()
    expect(page.locator(".flash-success")).to_contain_text("sam@example.com is disabled")
    assert messages and messages[0].startswith("Disable sam@example.com?")
    expect(page.locator("#admin-users tbody tr").first.locator(".badge.danger")).to_have_text("disabled")
    expect(page.locator("#admin-search-q")).to_have_value("sam")

    page.click(".admin-nav a:has-text('Users')")
    expect(page.locator("#admin-users tbody tr")).to_have_count(3)
    page.screenshot(path=str(tmp_path / "admin-users.png"), full_page=True)
    assert page.problems == [], page.problems
