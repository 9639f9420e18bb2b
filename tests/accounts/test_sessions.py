"""Browser sessions end on the server: a copy of the cookie is refused after log-out, "log out
everywhere" ends every browser and API token of the account, and the admin console likewise."""

from __future__ import annotations

from sqlalchemy import func, select

from morket.accounts.models import RefreshToken, User, UserSession
from morket.tables.models import Table
from tests.accounts.support import browser, log_in, page_csrf, post_form
from tests.factories import PASSWORD, UserFactory, workspace_with_owner

COOKIE = "session"


def _cookie(client) -> str:
    cookie = client.get_cookie(COOKIE, domain="localhost")
    assert cookie is not None, "the client holds no session cookie"
    return cookie.value


def _replaying(app, cookie: str):
    """Another browser that sends a saved copy of a session cookie."""
    thief = browser(app)
    thief.set_cookie(COOKIE, cookie, domain="localhost")
    return thief


def _tables(workspace) -> int:
    from morket.extensions import db

    return db.session.scalar(select(func.count()).select_from(Table).where(Table.workspace_id == workspace.id))


def test_a_saved_cookie_is_refused_after_logging_out(app, client, db):
    workspace, owner = workspace_with_owner()
    assert log_in(client, owner.email, PASSWORD).status_code == 302
    tables_page = f"/w/{workspace.slug}/tables"
    assert client.get(tables_page).status_code == 200
    token = page_csrf(client, tables_page)  # what a thief copying the cookie could copy too
    stolen = _cookie(client)
    assert _replaying(app, stolen).get(tables_page).status_code == 200, "the copy works while the session lives"

    assert post_form(client, "/logout", {}, csrf_from="/settings").status_code == 302

    thief = _replaying(app, stolen)
    for page in ("/settings", tables_page, "/w"):
        resp = thief.get(page)
        assert resp.status_code == 302, page
        assert "/login" in resp.headers["Location"]
    before = _tables(workspace)
    resp = thief.post(tables_page, data={"csrf_token": token, "name": "Planted"}, headers={"X-CSRFToken": token})
    assert resp.status_code == 302
    assert "/login" in resp.headers["Location"]
    assert _tables(workspace) == before
    # The grid's window read (its own fast path for the membership and the session) refuses it too.
    table = workspace_with_table(db, workspace, owner)
    resp = thief.get(f"/w/{workspace.slug}/tables/{table.id}/rows", headers={"HX-Request": "true"})
    assert resp.status_code in {302, 401}
    assert 'class="grid-row"' not in resp.get_data(as_text=True)


def workspace_with_table(db, workspace, owner):
    from morket.tables import service as tables

    table = tables.create_table(workspace, owner, "People", columns=[{"name": "Name", "type": "text"}])
    tables.insert_rows(workspace, owner, table, [{"Name": "Ada"}])
    db.session.flush()
    return table


def test_logging_out_ends_only_this_browser(app, client, db):
    user = UserFactory()
    other = browser(app)
    assert log_in(client, user.email, PASSWORD).status_code == 302
    assert log_in(other, user.email, PASSWORD).status_code == 302
    post_form(client, "/logout", {}, csrf_from="/settings")
    assert client.get("/settings").status_code == 302
    assert other.get("/settings").status_code == 200
    ended = db.session.scalars(select(UserSession.ended_at).where(UserSession.user_id == user.id)).all()
    assert sorted(at is None for at in ended) == [False, True]


def _refresh_token(user: User) -> RefreshToken:
    from morket.api.tokens import issue_token_pair
    from tests.factories import MembershipFactory

    membership = MembershipFactory(user=user)
    return issue_token_pair(membership)


def test_log_out_everywhere_ends_every_browser_and_api_token(app, client, db):
    user = UserFactory()
    laptop, phone = browser(app), browser(app)
    for each in (client, laptop, phone):
        assert log_in(each, user.email, PASSWORD).status_code == 302
    phone_cookie = _cookie(phone)
    pair = _refresh_token(user)
    api = browser(app)
    headers = {"Authorization": f"Bearer {pair.access_token}"}
    assert api.get("/api/v1/me", headers=headers).status_code == 200

    page = client.get("/settings").get_data(as_text=True)
    assert 'id="end-sessions-form"' in page
    assert 'data-confirm="Log out of every browser and API session, this one included?"' in page
    # Without the CSRF token nothing happens.
    assert client.post("/settings/sessions/end").status_code == 400
    assert laptop.get("/settings").status_code == 200

    resp = post_form(client, "/settings/sessions/end", {}, csrf_from="/settings")
    assert resp.status_code == 302
    assert resp.headers["Location"].endswith("/login")
    landing = client.get(resp.headers["Location"]).get_data(as_text=True)
    assert "You are logged out everywhere: 3 browser sessions (this one included)" in landing

    for each in (client, laptop, phone, _replaying(app, phone_cookie)):
        resp = each.get("/settings")
        assert resp.status_code == 302
        assert "/login" in resp.headers["Location"]
    assert api.get("/api/v1/me", headers=headers).status_code == 401
    refreshed = api.post("/api/v1/auth/refresh", json={"refresh_token": pair.refresh_token})
    assert refreshed.status_code == 401
    # Logging in again starts a new session.
    assert log_in(laptop, user.email, PASSWORD).status_code == 302
    assert laptop.get("/settings").status_code == 200


def test_log_out_everywhere_needs_a_login(client, db):
    resp = client.post("/settings/sessions/end")
    assert resp.status_code in {302, 400}
    assert (
        db.session.scalar(select(func.count()).select_from(UserSession).where(UserSession.ended_at.is_not(None))) == 0
    )


def test_a_cookie_of_the_old_form_logs_nobody_in(app, client, db):
    user = UserFactory()
    with client.session_transaction() as session:
        session["_user_id"] = f"{user.id}:1"  # <user id>:<session version>, before sessions were rows
        session["_fresh"] = True
    assert client.get("/settings").status_code == 302


def test_the_admin_console_refuses_a_saved_cookie_after_logging_out(app, client, db):
    admin = UserFactory(is_platform_admin=True)
    victim = UserFactory()
    assert log_in(client, admin.email, PASSWORD).status_code == 302
    assert client.get("/admin").status_code == 200
    token = page_csrf(client, "/settings")
    stolen = _cookie(client)

    assert post_form(client, "/logout", {}, csrf_from="/settings").status_code == 302

    thief = _replaying(app, stolen)
    resp = thief.get("/admin")
    assert resp.status_code == 404  # the console is invisible to anyone not logged in as a platform admin
    assert "victim" not in resp.get_data(as_text=True).lower()
    resp = thief.post(f"/admin/users/{victim.id}/disable", data={"csrf_token": token})
    assert resp.status_code == 404
    db.session.expire_all()
    assert db.session.get(User, victim.id).disabled_at is None


def test_the_daily_clean_up_keeps_an_ended_session_until_its_cookie_expires(app, client, db):
    from datetime import timedelta

    from morket.accounts.tasks import delete_expired_sessions
    from morket.core.db import utcnow

    user = UserFactory()
    assert log_in(client, user.email, PASSWORD).status_code == 302
    stolen = _cookie(client)
    post_form(client, "/logout", {}, csrf_from="/settings")
    other = browser(app)
    assert log_in(other, user.email, PASSWORD).status_code == 302
    stale = UserSession(user_id=user.id, key_hash="0" * 64, expires_at=utcnow() - timedelta(minutes=1))
    db.session.add(stale)
    db.session.flush()

    assert delete_expired_sessions() == 1
    assert db.session.scalar(select(func.count()).select_from(UserSession).where(UserSession.user_id == user.id)) == 2
    assert _replaying(app, stolen).get("/settings").status_code == 302
    assert other.get("/settings").status_code == 200
