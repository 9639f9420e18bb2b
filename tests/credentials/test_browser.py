"""In a real browser: an owner reaches Credentials from the workspace nav, stores a key, sees it masked, deletes it."""

from __future__ import annotations

from playwright.sync_api import expect
from sqlalchemy import create_engine, text

from tests.browser.conftest import browser_page, committed_owner, live_server  # noqa: F401 - the browser fixtures
from tests.factories import PASSWORD

SECRET = "sk-test-browser-5e0d77c2a1f9"


def test_add_a_key_see_it_masked_and_delete_it(app, database_url, live_server, browser_page):  # noqa: F811
    from morket.extensions import db

    with app.app_context():
        workspace, _ = committed_owner(
            email="kim@example.com", name="Kim", slug="kim-co", workspace_name="Kim Co", password=PASSWORD
        )
        db.session.commit()
        slug, workspace_id = workspace.slug, workspace.id
    page, base = browser_page, live_server
    page.goto(f"{base}/login")
    page.fill("#email", "kim@example.com")
    page.fill("#password", PASSWORD)
    page.click("form button[type=submit]")
    page.goto(f"{base}/w/{slug}/")
    page.click("nav[aria-label=Workspace] >> text=Credentials")
    expect(page.locator("#credentials")).to_contain_text("No provider keys yet")

    page.select_option("#provider", "hunter")
    page.fill("#label", "Sales team")
    expect(page.locator("#secret")).to_have_attribute("type", "password")
    page.fill("#secret", SECRET)
    page.click("#add-credential button[type=submit]")
    row = page.locator("#credentials tbody tr")
    expect(row).to_have_count(1)
    expect(row).to_contain_text("Hunter")
    expect(row).to_contain_text("••••a1f9")
    assert SECRET not in page.content()
    expect(page.locator("#secret")).to_have_value("")

    # Dismissing the confirmation keeps the key; accepting it deletes the key.
    page.once("dialog", lambda dialog: dialog.dismiss())
    page.click("#credentials button.danger")
    expect(row).to_have_count(1)
    page.once("dialog", lambda dialog: dialog.accept())
    page.click("#credentials button.danger")
    expect(page.locator("#credentials")).to_contain_text("No provider keys yet")
    assert page.problems == []

    engine = create_engine(database_url)
    with engine.connect() as conn:
        actions = conn.execute(
            text("SELECT action FROM audit_events WHERE workspace_id = :w ORDER BY id"), {"w": workspace_id}
        ).scalars()
        assert [a for a in actions if a.startswith("credential")] == ["credential.created", "credential.deleted"]
    engine.dispose()
