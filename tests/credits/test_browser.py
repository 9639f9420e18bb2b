"""In a real browser: the credits tab, the kind filter swapping the history in place, and older pages."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from tests.browser.conftest import browser_page, committed_owner, live_server  # noqa: F401 - the browser fixtures
from tests.factories import PASSWORD


def _committed_books(app) -> str:
    from morket.credits import service
    from morket.extensions import db

    with app.app_context():
        workspace, _ = committed_owner(
            email="cora@example.com", name="Cora", slug="cora-co", workspace_name="Cora Co", password=PASSWORD
        )
        service.grant(workspace.id, 100, idempotency_key="seed", note="Starter credits")
        for n in range(55):
            service.charge(
                workspace.id, 1, idempotency_key=f"hit:{n}", run_id=3, row_id=n + 1, operation="hunter.email_verifier"
            )
        db.session.commit()
        return workspace.slug


@pytest.mark.browser
def test_filter_and_page_through_the_history(app, live_server, browser_page):  # noqa: F811
    slug = _committed_books(app)
    page, base = browser_page, live_server
    page.goto(f"{base}/login")
    page.fill("#email", "cora@example.com")
    page.fill("#password", PASSWORD)
    page.click("form button[type=submit]")
    page.goto(f"{base}/w/{slug}")
    page.click("nav[aria-label=Workspace] >> text=Credits")
    expect(page.locator("#credits-balance-value")).to_have_text("45")
    expect(page.locator("#credit-ledger tbody tr")).to_have_count(50)

    # The filter is htmx: on a loaded machine the page's scripts can still be loading here.
    page.wait_for_load_state("load")
    page.select_option("#credit-kind", "grant")
    expect(page.locator("#credit-ledger tbody tr")).to_have_count(1, timeout=15_000)
    expect(page.locator("#credit-ledger")).to_contain_text("Starter credits")
    assert page.url.endswith("kind=grant")
    expect(page.locator("#credits-balance-value")).to_have_text("45")  # only the history was swapped

    page.select_option("#credit-kind", "debit")
    expect(page.locator("#credit-ledger tbody tr")).to_have_count(50)
    page.click("#credit-older")
    expect(page.locator("#credit-ledger tbody tr")).to_have_count(5)
    expect(page.locator("#credit-ledger tbody tr").last).to_contain_text("row 1")
    assert "before=" in page.url and "kind=debit" in page.url
    assert page.problems == []
