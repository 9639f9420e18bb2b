"""The command palette's table search (``GET /w/<slug>/tables/palette?q=``): any table of the
workspace by part of its name, newest first, never another workspace's, one statement."""

from __future__ import annotations

import pytest

from morket.tables import service
from tests.factories import MembershipFactory, login, workspace_with_owner

COLUMNS = [{"name": "Name", "type": "text"}]


@pytest.fixture
def thirty(db):
    """A workspace with 30 tables, "Prospects 01" to "Prospects 30", and its owner."""
    workspace, owner = workspace_with_owner(name="Palette Co")
    tables = [service.create_table(workspace, owner, f"Prospects {n:02d}", columns=COLUMNS) for n in range(1, 31)]
    return workspace, owner, tables


def _search(client, slug: str, q: str):
    resp = client.get(f"/w/{slug}/tables/palette", query_string={"q": q})
    return resp


def test_finds_a_table_the_sidebar_does_not_list_by_part_of_its_name(client, thirty):
    workspace, owner, tables = thirty
    login(client, owner)
    resp = _search(client, workspace.slug, "PECTS 27")
    assert resp.status_code == 200
    assert resp.headers["Cache-Control"] == "no-store"
    found = resp.get_json()["data"]["tables"]
    assert found == [
        {
            "id": tables[26].id,
            "name": "Prospects 27",
            "folder": None,
            "url": f"/w/{workspace.slug}/tables/{tables[26].id}",
        }
    ]


def test_lists_at_most_twenty_newest_first(client, thirty):
    workspace, owner, _ = thirty
    login(client, owner)
    names = [t["name"] for t in _search(client, workspace.slug, "prospects").get_json()["data"]["tables"]]
    assert names == [f"Prospects {n:02d}" for n in range(30, 10, -1)]
    # Without a query: the newest twenty, as the palette shows when it opens.
    assert len(_search(client, workspace.slug, "").get_json()["data"]["tables"]) == 20


def test_wildcards_in_the_query_match_themselves(client, db, thirty):
    workspace, owner, _ = thirty
    service.create_table(workspace, owner, "Growth_100% list", columns=COLUMNS)
    login(client, owner)
    assert _search(client, workspace.slug, "%").get_json()["data"]["tables"][0]["name"] == "Growth_100% list"
    assert [t["name"] for t in _search(client, workspace.slug, "_").get_json()["data"]["tables"]] == [
        "Growth_100% list"
    ]
    assert _search(client, workspace.slug, "no such table").get_json()["data"]["tables"] == []


def test_another_workspaces_table_is_never_returned(client, db, thirty):
    workspace, owner, _ = thirty
    other, other_owner = workspace_with_owner(name="Rival Co")
    service.create_table(other, other_owner, "Prospects 27 (rival)", columns=COLUMNS)
    login(client, owner)
    names = [t["name"] for t in _search(client, workspace.slug, "27").get_json()["data"]["tables"]]
    assert names == ["Prospects 27"]
    # The rival's owner asking through this workspace's URL: not a member, so 404 as for any page.
    login(client, other_owner)
    assert _search(client, workspace.slug, "27").status_code == 404
    assert [t["name"] for t in _search(client, other.slug, "prospects").get_json()["data"]["tables"]] == [
        "Prospects 27 (rival)"
    ]


def test_a_viewer_finds_tables_and_gets_nothing_but_where_to_go(client, db, thirty):
    workspace, _, tables = thirty
    viewer = MembershipFactory(workspace=workspace, role="viewer").user
    login(client, viewer)
    found = _search(client, workspace.slug, "27").get_json()["data"]["tables"]
    assert [t["name"] for t in found] == ["Prospects 27"]
    assert set(found[0]) == {"id", "name", "folder", "url"}


def test_billing_admin_without_tables_is_refused(client, db, thirty):
    workspace, _, _ = thirty
    billing = MembershipFactory(workspace=workspace, role="billing_admin").user
    login(client, billing)
    assert _search(client, workspace.slug, "27").status_code == 403


def test_a_query_too_long_is_a_clear_400(client, thirty):
    workspace, owner, _ = thirty
    login(client, owner)
    resp = _search(client, workspace.slug, "x" * 121)
    assert resp.status_code == 400
    assert "at most 120 characters" in resp.get_json()["error"]["message"]


def test_the_search_is_one_statement(client, thirty, query_budget):
    workspace, owner, _ = thirty
    login(client, owner)
    client.get(f"/w/{workspace.slug}/tables/palette?q=1")  # warm the session's user and membership reads
    with query_budget(10) as statements:
        assert _search(client, workspace.slug, "prospects 2").status_code == 200
    on_tables = [s for s in statements if "FROM tables" in s]
    assert len(on_tables) == 1, statements
    assert "ILIKE" in on_tables[0].upper() and "LIMIT" in on_tables[0].upper()
