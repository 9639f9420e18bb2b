"""The platform admin console: hidden from everyone else, lists and searches, disables users."""

import re

import pytest
from sqlalchemy import select

from morket.accounts.models import RefreshToken, User
from morket.core.models import AuditEvent
from tests.admin.conftest import log_in

ADMIN_PATHS = [
    ("GET", "/admin"),
    ("GET", "/admin/"),
    ("GET", "/admin/workspaces"),
    ("GET", "/admin/workspaces/1"),
    ("GET", "/admin/users/1/disable"),
    ("POST", "/admin/users/1/disable"),
    ("POST", "/admin/users/1/enable"),
    ("GET", "/admin/no-such-room"),
]


def _csrf(client, path: str = "/admin") -> str:
    match = re.search(r'"X-CSRFToken": "([^"]+)"', client.get(path).get_data(as_text=True))
    assert match
    return match.group(1)


def _ids(html: str, prefix: str) -> list[int]:
    return [int(m) for m in re.findall(rf'id="{prefix}-(\d+)"', html)]


def _without_tokens(resp) -> str:
    return re.sub(r'("X-CSRFToken": "|name="csrf_token" value=")[^"]+', r"\1", resp.get_data(as_text=True))


def _assert_looks_missing(resp, missing):
    assert resp.status_code == 404
    assert _without_tokens(resp) == _without_tokens(missing)
    assert "X-RateLimit-Limit" not in resp.headers and "Location" not in resp.headers


@pytest.mark.parametrize(("method", "path"), ADMIN_PATHS)
def test_anonymous_visitors_get_a_404_indistinguishable_from_a_missing_page(client, method, path):
    missing = client.open("/no-such-page", method=method)
    _assert_looks_missing(client.open(path, method=method), missing)


@pytest.mark.parametrize(("method", "path"), ADMIN_PATHS)
def test_ordinary_users_get_a_404_too(client, make_user, method, path, caplog):
    log_in(client, make_user("member@example.com"))
    missing = client.open("/no-such-page", method=method)
    _assert_looks_missing(client.open(path, method=method), missing)
    assert any(getattr(r, "data", {}).get("event") == "admin_refused" for r in caplog.records)


def _every_admin_route(app):
    for rule in app.url_map.iter_rules():
        if rule.rule == "/admin" or rule.rule.startswith("/admin/"):
            path = rule.rule
            for name in rule.arguments:
                path = path.replace(f"<int:{name}>", "1").replace(f"<{name}>", "x")
            for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
                yield method, path


def test_every_admin_route_in_the_url_map_is_hidden_from_members_and_visitors(app, client, make_user):
    routes = list(_every_admin_route(app))
    assert len(routes) >= 5
    for method, path in routes:
        assert client.open(path, method=method).status_code == 404, (method, path)
    log_in(client, make_user("member@example.com"))
    for method, path in routes:
        assert client.open(path, method=method).status_code == 404, (method, path)


def test_non_admins_are_never_rate_limited_into_revealing_the_console(client):
    for _ in range(15):
        assert client.get("/admin").status_code == 404


def test_users_list_shows_state_and_workspace_count(admin_client, admin_user, make_user, make_workspace):
    ann = make_user("ann@example.com", name="Ann Example")
    bob = make_user("bob@example.com", name="Bob Builder", verified=False)
    make_workspace("Acme", "acme", [(ann, "owner"), (bob, "member")])
    make_workspace("Beta", "beta", [(ann, "viewer")])

    resp = admin_client.get("/admin")
    assert resp.status_code == 200
    html = resp.get_data(as_text=True)
    assert "Platform admin" in html and 'href="/admin/workspaces"' in html
    rows = dict(re.findall(r'id="admin-user-(\d+)">(.*?)</tr>', html, re.S))
    ann_row, bob_row = rows[str(ann.id)], rows[str(bob.id)]
    assert "ann@example.com" in ann_row and "<td>2</td>" in ann_row and "verified" in ann_row
    assert "bob@example.com" in bob_row and "<td>1</td>" in bob_row and "unverified" in bob_row
    assert "Disable" in ann_row
    assert "Disable" not in rows[str(admin_user.id)], "an admin cannot disable themselves"


def test_search_matches_email_or_name_and_treats_wildcards_literally(admin_client, make_user):
    ann = make_user("ann@example.com", name="Ann Example")
    bob = make_user("bob@other.org", name="Robert 100% Builder")
    assert _ids(admin_client.get("/admin?q=EXAMPLE.com").get_data(as_text=True), "admin-user") == [ann.id]
    assert _ids(admin_client.get("/admin?q=robert").get_data(as_text=True), "admin-user") == [bob.id]
    assert _ids(admin_client.get("/admin?q=100%25").get_data(as_text=True), "admin-user") == [bob.id]
    assert _ids(admin_client.get("/admin?q=_").get_data(as_text=True), "admin-user") == []
    empty = admin_client.get("/admin?q=zzz-nobody").get_data(as_text=True)
    assert "No user matches" in empty


def test_pages_hold_at_most_50_users_and_link_to_the_next(admin_client, db, admin_user):
    db.session.add_all(User(email=f"bulk{i:03}@example.com", password_hash="!") for i in range(60))
    db.session.flush()
    first = admin_client.get("/admin?per_page=50").get_data(as_text=True)
    assert len(_ids(first, "admin-user")) == 50
    assert 'href="/admin?page=2"' in first
    second = admin_client.get("/admin?page=2&per_page=50").get_data(as_text=True)
    assert len(_ids(second, "admin-user")) == 11
    assert set(_ids(first, "admin-user")).isdisjoint(_ids(second, "admin-user"))
    too_many = admin_client.get("/admin?per_page=500")
    assert too_many.status_code == 422
    assert "Number must be between 1 and 50" in too_many.get_data(as_text=True)
    assert len(_ids(too_many.get_data(as_text=True), "admin-user")) <= 50


def test_bad_page_numbers_get_a_clear_error_not_a_500(admin_client):
    resp = admin_client.get("/admin?page=abc")
    assert resp.status_code == 422
    assert "Not a valid integer value" in resp.get_data(as_text=True)


def test_disabling_a_user_ends_their_session_at_once_and_is_audited(app, admin_client, admin_user, make_user, db):
    victim = make_user("victim@example.com")
    victim_client = app.test_client()
    log_in(victim_client, victim)
    assert victim_client.get("/w").status_code == 200

    resp = admin_client.post(f"/admin/users/{victim.id}/disable", data={"csrf_token": _csrf(admin_client)})
    assert resp.status_code == 302
    followed = admin_client.get(resp.headers["Location"]).get_data(as_text=True)
    assert "victim@example.com is disabled" in followed

    assert victim_client.get("/w").status_code == 302, "the disabled user's session no longer logs them in"
    events = db.session.scalars(select(AuditEvent).where(AuditEvent.target == f"user:{victim.id}")).all()
    assert [(e.action, e.workspace_id, e.actor_id) for e in events] == [("user.disabled", None, admin_user.id)]

    resp = admin_client.post(f"/admin/users/{victim.id}/enable", data={"csrf_token": _csrf(admin_client)})
    assert resp.status_code == 302
    # Enabling again does not bring the old session back (it may be what got the account disabled).
    assert victim_client.get("/w").status_code == 302
    log_in(victim_client, victim)
    assert victim_client.get("/w").status_code == 200
    actions = db.session.scalars(
        select(AuditEvent.action).where(AuditEvent.target == f"user:{victim.id}").order_by(AuditEvent.id)
    ).all()
    assert actions == ["user.disabled", "user.enabled"]


def test_disabling_revokes_the_users_api_refresh_tokens(admin_client, make_user, make_workspace, db):
    from morket.api.tokens import issue_token_pair
    from morket.workspaces.models import Membership

    victim = make_user("api-user@example.com")
    workspace = make_workspace("Api", "api-ws", [(victim, "member")])
    membership = db.session.scalar(select(Membership).where(Membership.workspace_id == workspace.id))
    pair = issue_token_pair(membership)
    db.session.commit()
    admin_client.post(f"/admin/users/{victim.id}/disable", data={"csrf_token": _csrf(admin_client)})
    revoked = db.session.scalars(select(RefreshToken.revoked_at).where(RefreshToken.user_id == victim.id)).all()
    assert revoked and all(at is not None for at in revoked)
    resp = admin_client.post("/api/v1/auth/refresh", json={"refresh_token": pair.refresh_token})
    assert resp.status_code in {401, 404}
    assert resp.get_json()["success"] is False


def test_an_admin_cannot_disable_themselves(admin_client, admin_user):
    resp = admin_client.post(
        f"/admin/users/{admin_user.id}/disable", data={"csrf_token": _csrf(admin_client)}, follow_redirects=True
    )
    assert resp.status_code == 200
    assert "You cannot disable your own account." in resp.get_data(as_text=True)
    assert admin_user.is_active


def test_disabling_an_unknown_user_is_a_404(admin_client):
    resp = admin_client.post("/admin/users/987654321/disable", data={"csrf_token": _csrf(admin_client)})
    assert resp.status_code == 404


def test_admin_posts_need_the_csrf_token_in_the_form_or_the_htmx_header(admin_client, make_user):
    victim = make_user("csrf@example.com")
    assert admin_client.post(f"/admin/users/{victim.id}/disable").status_code == 400
    assert victim.is_active
    token = _csrf(admin_client)
    resp = admin_client.post(f"/admin/users/{victim.id}/disable", headers={"X-CSRFToken": token, "HX-Request": "true"})
    assert resp.status_code == 302
    assert not victim.is_active


def test_the_disable_button_asks_for_confirmation(admin_client, make_user):
    victim = make_user("confirm@example.com")
    html = admin_client.get("/admin").get_data(as_text=True)
    form = re.search(rf'<form[^>]*action="/admin/users/{victim.id}/disable"[^>]*>', html).group(0)
    assert 'data-confirm="Disable confirm@example.com?' in form


def test_workspaces_list_search_and_member_page(admin_client, make_user, make_workspace):
    ann = make_user("ann@example.com", name="Ann")
    bob = make_user("bob@example.com", name="Bob")
    acme = make_workspace("Acme Corp", "acme", [(bob, "viewer"), (ann, "owner")])
    beta = make_workspace("Beta", "beta-team", [(bob, "admin")])

    html = admin_client.get("/admin/workspaces").get_data(as_text=True)
    assert set(_ids(html, "admin-workspace")) >= {acme.id, beta.id}
    assert _ids(admin_client.get("/admin/workspaces?q=acme").get_data(as_text=True), "admin-workspace") == [acme.id]
    assert _ids(admin_client.get("/admin/workspaces?q=TEAM").get_data(as_text=True), "admin-workspace") == [beta.id]
    assert "No workspace matches" in admin_client.get("/admin/workspaces?q=nothing").get_data(as_text=True)

    page = admin_client.get(f"/admin/workspaces/{acme.id}")
    assert page.status_code == 200
    members = page.get_data(as_text=True)
    assert members.index("ann@example.com") < members.index("bob@example.com"), "owners are listed first"
    assert ">owner<" in members and ">viewer<" in members


def test_an_unknown_workspace_is_a_404(admin_client):
    assert admin_client.get("/admin/workspaces/987654321").status_code == 404


def test_admin_routes_are_limited_to_10_a_minute_per_admin(app, admin_client, make_user):
    for _ in range(10):
        assert admin_client.get("/admin/workspaces").status_code == 200
    resp = admin_client.get("/admin/workspaces")
    assert resp.status_code == 429
    assert 1 <= int(resp.headers["Retry-After"]) <= 60
    assert "Slow down" in resp.get_data(as_text=True)

    other = app.test_client()
    log_in(other, make_user("second-admin@example.com", admin=True))
    assert other.get("/admin/workspaces").status_code == 200, "the limit is per admin, not shared"


def test_set_admin_cli_grants_and_revokes_the_flag(app, make_user):
    user = make_user("cli@example.com")
    runner = app.test_cli_runner()
    result = runner.invoke(args=["set-admin", "CLI@example.com"])
    assert result.exit_code == 0, result.output
    assert "cli@example.com is a platform admin" in result.output
    assert user.is_platform_admin
    result = runner.invoke(args=["set-admin", "cli@example.com", "--revoke"])
    assert result.exit_code == 0
    assert "no longer a platform admin" in result.output
    assert not user.is_platform_admin


def test_set_admin_cli_names_an_unknown_email(app, db):
    result = app.test_cli_runner().invoke(args=["set-admin", "ghost@example.com"])
    assert result.exit_code != 0
    assert "no user with email ghost@example.com" in result.output


def test_the_admin_link_shows_only_for_platform_admins(app, admin_client, make_user):
    assert 'href="/admin"' in admin_client.get("/w").get_data(as_text=True)
    member = app.test_client()
    log_in(member, make_user("plain@example.com"))
    assert 'href="/admin"' not in member.get("/w").get_data(as_text=True)
