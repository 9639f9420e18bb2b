"""The credits page: balance, history by kind, keyset pages, debits pointing at their run, roles and tenancy."""

from __future__ import annotations

import re

import pytest

from morket.core.roles import ADMIN, BILLING_ADMIN, MEMBER, VIEWER
from morket.credits import service
from tests.factories import MembershipFactory, login


def _ids(html: str) -> list[int]:
    return [int(n) for n in re.findall(r'id="credit-entry-(\d+)"', html)]


@pytest.fixture
def browser(client, owner):
    workspace, user = owner
    login(client, user)
    return client


def test_the_page_shows_the_balance_and_each_entry_with_its_cause(app, browser, owner, fund):
    workspace, _ = owner
    fund(workspace, 20)
    debit = service.charge(
        workspace.id,
        2,
        idempotency_key="hit-1",
        run_id=7,
        row_id=31,
        column_id=5,
        provider="hunter",
        operation="hunter.email_finder",
    )
    service.charge(workspace.id, 2, idempotency_key="own-1", run_id=7, provider="apollo", key_source="own")
    service.refund(workspace.id, 2, idempotency_key="back-1", refers_to=debit.id, note="Provider returned an error")
    resp = browser.get(f"/w/{workspace.slug}/credits")
    assert resp.status_code == 200
    html = resp.get_data(as_text=True)
    assert re.search(r'id="credits-balance-value">20<', html)
    assert len(_ids(html)) == 4
    row = html.split(f'id="credit-entry-{debit.id}"')[1].split("</tr>")[0]
    assert "hunter.email_finder" in row and "Run #7" in row and "row 31" in row and "-2" in row
    if "enrichment.run_page" in app.view_functions:
        assert f"/w/{workspace.slug}/" in row and ">Run #7</a>" in row
    else:
        assert "<a" not in row
    assert "with your own apollo key" in html
    assert "Provider returned an error" in html and f"for entry #{debit.id}" in html
    assert 'id="price-hunter-email_finder"' in html


def test_the_kind_filter_shows_one_kind(browser, owner, fund):
    workspace, _ = owner
    fund(workspace, 5)
    charged = service.charge(workspace.id, 1, idempotency_key="c")
    resp = browser.get(f"/w/{workspace.slug}/credits?kind=debit")
    assert _ids(resp.get_data(as_text=True)) == [charged.id]
    resp = browser.get(f"/w/{workspace.slug}/credits?kind=refund")
    assert _ids(resp.get_data(as_text=True)) == [] and "No refunds here." in resp.get_data(as_text=True)


def test_history_pages_by_keyset_without_gaps_or_repeats(browser, owner, fund):
    workspace, _ = owner
    entries = [fund(workspace, 1).id for _ in range(60)]
    html = browser.get(f"/w/{workspace.slug}/credits").get_data(as_text=True)
    first = _ids(html)
    assert first == entries[::-1][:50]
    older = re.search(r'id="credit-older" href="([^"]+)"', html).group(1).replace("&amp;", "&")
    assert f"before={first[-1]}" in older
    html = browser.get(older).get_data(as_text=True)
    assert _ids(html) == entries[::-1][50:]
    assert 'id="credit-older"' not in html and ">Newest</a>" in html


def test_htmx_gets_only_the_history(browser, owner, fund):
    workspace, _ = owner
    fund(workspace, 3)
    resp = browser.get(
        f"/w/{workspace.slug}/credits?kind=grant", headers={"HX-Request": "true", "HX-Target": "credit-history"}
    )
    html = resp.get_data(as_text=True)
    assert resp.status_code == 200 and html.lstrip().startswith('<div id="credit-history">')
    assert "credits-balance-value" not in html and len(_ids(html)) == 1
    assert "HX-Request" in resp.headers["Vary"]


@pytest.mark.parametrize("query", ["kind=bogus", "before=abc", "before=0", "before=99999999999999999999999"])
def test_bad_filters_get_a_clear_error(browser, owner, query):
    workspace, _ = owner
    resp = browser.get(f"/w/{workspace.slug}/credits?{query}")
    assert resp.status_code == 422
    assert 'class="flash flash-error"' in resp.get_data(as_text=True)


@pytest.mark.parametrize(("role", "status"), [(BILLING_ADMIN, 200), (ADMIN, 200), (MEMBER, 403), (VIEWER, 403)])
def test_only_owners_admins_and_billing_admins_see_credits(client, owner, role, status):
    workspace, _ = owner
    user = MembershipFactory(workspace=workspace, role=role).user
    login(client, user)
    assert client.get(f"/w/{workspace.slug}/credits").status_code == status
    tabs = client.get(f"/w/{workspace.slug}/members").get_data(as_text=True)
    assert (f'href="/w/{workspace.slug}/credits"' in tabs) == (status == 200)


def test_another_workspace_gets_404_and_never_sees_these_entries(client, owner, stranger, fund):
    (a, _), (b, b_owner) = owner, stranger
    fund(a, 9)
    theirs = fund(b, 4)
    login(client, b_owner)
    assert client.get(f"/w/{a.slug}/credits").status_code == 404
    html = client.get(f"/w/{b.slug}/credits").get_data(as_text=True)
    assert _ids(html) == [theirs.id] and 'id="credits-balance-value">4<' in html


def test_visitors_are_sent_to_log_in(client, owner):
    workspace, _ = owner
    resp = client.get(f"/w/{workspace.slug}/credits")
    assert resp.status_code == 302 and "/login" in resp.headers["Location"]


def test_a_full_page_costs_the_same_few_statements(browser, owner, fund, query_budget):
    """Entries by many people still cost one statement for their names, not one each."""
    from tests.factories import UserFactory

    workspace, _ = owner
    fund(workspace, 500)
    for n in range(50):
        service.adjust(workspace.id, -1, idempotency_key=f"adj:{n}", actor_id=UserFactory().id, note=f"fix {n}")
    # The session's user and membership; the app shell's workspace switcher, newest tables and pending
    # invitations; then the ledger page, its people and the balance. None of them grows with the entries.
    with query_budget(8) as statements:
        resp = browser.get(f"/w/{workspace.slug}/credits")
    assert resp.status_code == 200 and len(_ids(resp.get_data(as_text=True))) == 50
    assert sum("FROM users" in s for s in statements) <= 2, statements
