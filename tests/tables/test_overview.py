"""What the workspace's own pages show of its tables: the sidebar's recent tables (the overview's
card and the sample table are checked in tests/workspaces)."""

from __future__ import annotations

from morket.tables import service as tables
from tests.factories import MembershipFactory, login, workspace_with_owner


def _sidebar_tables(page: str) -> str:
    assert 'id="sidebar"' in page
    if 'id="sidebar-tables"' not in page:
        return ""
    return page.split('id="sidebar-tables"', 1)[1].split("</ul>", 1)[0]


def test_the_sidebar_lists_the_eight_newest_tables_to_those_who_may_see_them(client, new_client, db):
    workspace, owner = workspace_with_owner()
    made = [tables.create_table(workspace, owner, f"List {n:02d}") for n in range(1, 11)]
    other, other_owner = workspace_with_owner()
    tables.create_table(other, other_owner, "Not yours")
    login(client, owner)

    listed = _sidebar_tables(client.get(f"/w/{workspace.slug}/members").get_data(as_text=True))
    # Newest first, eight of them: the two oldest are reached through "Tables".
    positions = [listed.find(f">{t.name}</a>") for t in made]
    assert all(p > 0 for p in positions[2:]) and positions[:2] == [-1, -1]
    assert positions[2:] == sorted(positions[2:], reverse=True)
    assert f'href="/w/{workspace.slug}/tables/{made[-1].id}"' in listed
    assert "Not yours" not in listed

    billing = MembershipFactory(workspace=workspace, role="billing_admin")
    other_browser = new_client()
    login(other_browser, billing.user)
    page = other_browser.get(f"/w/{workspace.slug}/credits").get_data(as_text=True)
    assert _sidebar_tables(page) == "" and "List 10" not in page
