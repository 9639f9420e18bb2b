"""Every workspace route for every role, a member of another workspace, and an anonymous visitor.

The table is written out by hand (not derived from roles.py) so that a wrong permission in either
place fails here; a route added to the blueprint without a row here fails too.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import pytest

from tests.factories import csrf_token, login

ROLES = ("owner", "admin", "member", "viewer", "billing_admin")
EVERYONE = frozenset(ROLES)
MANAGERS = frozenset({"owner", "admin"})
OWNERS = frozenset({"owner"})


@dataclass(frozen=True)
class Case:
    method: str
    rule: str
    allowed: frozenset[str]
    ok: int
    path: Callable
    data: Callable = lambda team: {}


CASES = [
    Case("GET", "/w/<slug>/", EVERYONE, 200, lambda t: f"/w/{t.workspace.slug}/"),
    Case("GET", "/w/<slug>/settings", MANAGERS, 200, lambda t: f"/w/{t.workspace.slug}/settings"),
    Case(
        "POST",
        "/w/<slug>/settings",
        MANAGERS,
        302,
        lambda t: f"/w/{t.workspace.slug}/settings",
        lambda t: {"name": "Acme Renamed"},
    ),
    Case(
        "POST",
        "/w/<slug>/settings/delete",
        OWNERS,
        302,
        lambda t: f"/w/{t.workspace.slug}/settings/delete",
        lambda t: {"confirm_name": t.workspace.name},
    ),
    Case("GET", "/w/<slug>/members", EVERYONE, 200, lambda t: f"/w/{t.workspace.slug}/members"),
    Case(
        "POST",
        "/w/<slug>/members",
        MANAGERS,
        302,
        lambda t: f"/w/{t.workspace.slug}/members",
        lambda t: {"email": "new.hire@example.com", "role": "member"},
    ),
    Case(
        "POST",
        "/w/<slug>/members/<int:membership_id>/role",
        MANAGERS,
        302,
        lambda t: f"/w/{t.workspace.slug}/members/{t.target.id}/role",
        lambda t: {"role": "member"},
    ),
    Case(
        "POST",
        "/w/<slug>/members/<int:membership_id>/remove",
        MANAGERS,
        302,
        lambda t: f"/w/{t.workspace.slug}/members/{t.target.id}/remove",
    ),
    Case(
        "POST",
        "/w/<slug>/members/<int:membership_id>/transfer",
        OWNERS,
        302,
        lambda t: f"/w/{t.workspace.slug}/members/{t.target.id}/transfer",
    ),
    Case("POST", "/w/<slug>/leave", EVERYONE, 302, lambda t: f"/w/{t.workspace.slug}/leave"),
    Case(
        "POST",
        "/w/<slug>/invitations/<int:invitation_id>/revoke",
        MANAGERS,
        302,
        lambda t: f"/w/{t.workspace.slug}/invitations/{t.invitation.id}/revoke",
    ),
    Case("GET", "/w/<slug>/api-keys", MANAGERS, 200, lambda t: f"/w/{t.workspace.slug}/api-keys"),
    Case(
        "POST",
        "/w/<slug>/api-keys",
        MANAGERS,
        200,
        lambda t: f"/w/{t.workspace.slug}/api-keys",
        lambda t: {"name": "Warehouse", "role": "viewer"},
    ),
    Case(
        "POST",
        "/w/<slug>/api-keys/<int:key_id>/revoke",
        MANAGERS,
        302,
        lambda t: f"/w/{t.workspace.slug}/api-keys/{t.api_key.id}/revoke",
    ),
]
# Routes outside /w/<slug>/, covered by their own tests below and in test_invitations.py.
# The overview's sample table is a tables route: tests/workspaces/test_feedback.py checks it by role.
OTHER_ROUTES = {
    ("GET", "/w"),
    ("POST", "/w"),
    ("GET", "/invite/<token>"),
    ("POST", "/invite/<token>"),
}


def _request(client, case: Case, team, token: str):
    if case.method == "GET":
        return client.get(case.path(team))
    return client.post(case.path(team), data={"csrf_token": token, **case.data(team)})


def test_the_table_covers_every_workspace_route(app):
    routes = {
        (method, rule.rule)
        for rule in app.url_map.iter_rules()
        if rule.endpoint.startswith("workspaces.")
        for method in rule.methods - {"HEAD", "OPTIONS"}
    }
    assert routes == {(c.method, c.rule) for c in CASES} | OTHER_ROUTES


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("case", CASES, ids=lambda c: f"{c.method} {c.rule}")
def test_role_gets_expected_status(client, team, case, role):
    login(client, team.users[role])
    token = csrf_token(client, "/w")
    resp = _request(client, case, team, token)
    expected = case.ok if role in case.allowed else 403
    assert resp.status_code == expected, resp.get_data(as_text=True)[:500]


@pytest.mark.parametrize("case", CASES, ids=lambda c: f"{c.method} {c.rule}")
def test_member_of_another_workspace_gets_404(client, team, case):
    login(client, team.outsider)
    resp = _request(client, case, team, csrf_token(client, "/w"))
    assert resp.status_code == 404


@pytest.mark.parametrize("case", CASES, ids=lambda c: f"{c.method} {c.rule}")
def test_anonymous_visitor_is_sent_to_log_in(client, team, case):
    resp = _request(client, case, team, csrf_token(client, "/login"))
    assert resp.status_code == 302
    assert resp.headers["Location"].startswith("/login?next=")


def test_ids_from_another_workspace_are_404_even_for_its_owner(client, team):
    other_owner = team.outsider
    login(client, other_owner)
    token = csrf_token(client, "/w")
    slug = team.other_workspace.slug
    for path in (
        f"/w/{slug}/members/{team.target.id}/role",
        f"/w/{slug}/members/{team.target.id}/remove",
        f"/w/{slug}/members/{team.target.id}/transfer",
        f"/w/{slug}/invitations/{team.invitation.id}/revoke",
        f"/w/{slug}/api-keys/{team.api_key.id}/revoke",
    ):
        resp = client.post(path, data={"csrf_token": token, "role": "member"})
        assert resp.status_code == 404, path
    assert team.target.role == "viewer" and team.api_key.revoked_at is None and team.invitation.revoked_at is None


def test_home_lists_only_your_workspaces(client, team):
    login(client, team.users["viewer"])
    page = client.get("/w").get_data(as_text=True)
    assert "Acme Growth" in page and "Other Co" not in page
    assert client.get("/w", follow_redirects=False).status_code == 200


def test_home_and_create_send_anonymous_visitors_to_log_in(client, db):
    assert client.get("/w").headers["Location"].startswith("/login?next=")
    resp = client.post("/w", data={"csrf_token": csrf_token(client, "/login"), "name": "X"})
    assert resp.status_code == 302 and resp.headers["Location"].startswith("/login?next=")
