"""Access and refresh tokens: issue, verify, expiry, rotation, replay, caps, logout, demotion."""

from __future__ import annotations

import time

from joserfc import jwt
from joserfc.jwk import OctKey
from sqlalchemy import func, select, update

from morket.accounts.models import RefreshToken
from morket.api.tokens import MAX_LIVE_REFRESH_TOKENS
from morket.core.roles import VIEWER
from morket.workspaces.models import Membership
from tests.api.conftest import bearer
from tests.factories import PASSWORD, MembershipFactory


def _craft(app, **overrides) -> str:
    now = int(time.time())
    claims = {
        "iss": "morket",
        "aud": "morket-api",
        "jti": "crafted",
        "sub": "1",
        "role": "owner",
        "workspace_id": 1,
        "fam": "crafted-family",
        "iat": now,
        "exp": now + 900,
    }
    claims.update(overrides)
    claims = {name: value for name, value in claims.items() if value is not None}  # None leaves a claim out
    key = OctKey.import_key(app.config["MORKET"]["JWT_SECRET"])
    return jwt.encode({"alg": "HS256"}, claims, key)


def test_token_is_issued_for_a_member_and_opens_the_api(client, team, login_api):
    pair = login_api(team.admin, team.workspace)
    assert pair["token_type"] == "Bearer"
    assert pair["expires_in"] == 900
    assert pair["workspace"]["slug"] == team.workspace.slug
    assert pair["role"] == "admin"
    resp = client.get("/api/v1/me", headers=bearer(pair["access_token"]))
    assert resp.status_code == 200
    body = resp.get_json()
    assert body["success"] is True
    assert body["data"]["user"]["email"] == team.admin.email
    assert body["data"]["workspace"]["id"] == team.workspace.id


def test_access_token_carries_the_documented_claims(app, team, login_api):
    pair = login_api(team.member, team.workspace)
    key = OctKey.import_key(app.config["MORKET"]["JWT_SECRET"])
    claims = jwt.decode(pair["access_token"], key, algorithms=["HS256"]).claims
    assert claims["iss"] == "morket"
    assert claims["aud"] == "morket-api"
    assert claims["sub"] == str(team.member.id)
    assert claims["workspace_id"] == team.workspace.id
    assert claims["role"] == "member"
    assert claims["exp"] - claims["iat"] == 900
    assert claims["jti"]


def test_wrong_credentials_are_401_and_a_foreign_workspace_is_404(client, team, other_team):
    attempts = [
        ({"email": team.owner.email, "password": "wrong password", "workspace": team.workspace.slug}, 401),
        ({"email": "nobody@example.com", "password": "whatever", "workspace": team.workspace.slug}, 401),
        ({"email": team.owner.email, "password": PASSWORD, "workspace": other_team.workspace.slug}, 404),
        ({"email": team.owner.email, "password": PASSWORD, "workspace": "no-such-workspace"}, 404),
    ]
    for i, (payload, status) in enumerate(attempts):
        resp = client.post("/api/v1/auth/token", json=payload, environ_base={"REMOTE_ADDR": f"10.1.0.{i}"})
        assert resp.status_code == status, payload
        assert resp.get_json()["data"] is None
        assert "access_token" not in resp.get_data(as_text=True)


def test_api_login_counts_towards_the_account_lockout(client, team):
    for i in range(5):
        resp = client.post(
            "/api/v1/auth/token",
            json={"email": team.viewer.email, "password": f"wrong {i}", "workspace": team.workspace.slug},
            environ_base={"REMOTE_ADDR": f"10.3.0.{i}"},
        )
    assert resp.status_code == 423
    right = client.post(
        "/api/v1/auth/token",
        json={"email": team.viewer.email, "password": PASSWORD, "workspace": team.workspace.slug},
        environ_base={"REMOTE_ADDR": "10.3.1.1"},
    )
    assert right.status_code == 423
    assert right.get_json()["error"]["code"] == "locked"


def test_expired_token_is_refused(app, client, team):
    past = int(time.time()) - 3600
    token = _craft(app, sub=str(team.owner.id), workspace_id=team.workspace.id, iat=past, exp=past + 900)
    resp = client.get("/api/v1/me", headers=bearer(token))
    assert resp.status_code == 401
    assert resp.get_json()["error"]["message"] == "The access token has expired."
    assert resp.headers["WWW-Authenticate"].startswith("Bearer")


def test_wrong_audience_issuer_or_key_is_refused(app, client, team):
    good = {"sub": str(team.owner.id), "workspace_id": team.workspace.id}
    assert client.get("/api/v1/me", headers=bearer(_craft(app, **good))).status_code == 200
    for bad in ({"aud": "someone-else"}, {"iss": "evil"}):
        resp = client.get("/api/v1/me", headers=bearer(_craft(app, **good, **bad)))
        assert resp.status_code == 401, bad
    forged = jwt.encode(
        {"alg": "HS256"},
        {
            "iss": "morket",
            "aud": "morket-api",
            "jti": "x",
            "sub": str(team.owner.id),
            "workspace_id": team.workspace.id,
            "iat": int(time.time()),
            "exp": int(time.time()) + 900,
        },
        OctKey.import_key("another-secret-entirely-0123456789abcdef"),
    )
    assert client.get("/api/v1/me", headers=bearer(forged)).status_code == 401


def test_missing_or_garbage_authorization_is_401(client, db):
    for headers in ({}, {"Authorization": "Basic abc"}, {"Authorization": "Bearer"}, bearer("not.a.jwt")):
        resp = client.get("/api/v1/me", headers=headers)
        assert resp.status_code == 401
        assert resp.get_json()["success"] is False


def test_refresh_rotates_and_the_old_token_is_consumed(client, db, team, login_api):
    pair = login_api(team.member, team.workspace)
    resp = client.post("/api/v1/auth/refresh", json={"refresh_token": pair["refresh_token"]})
    assert resp.status_code == 200
    second = resp.get_json()["data"]
    assert second["refresh_token"] != pair["refresh_token"]
    assert client.get("/api/v1/me", headers=bearer(second["access_token"])).status_code == 200
    rows = db.session.scalars(select(RefreshToken).where(RefreshToken.user_id == team.member.id)).all()
    assert len({row.family_id for row in rows}) == 1
    assert sum(row.used_at is not None for row in rows) == 1


def test_replayed_refresh_token_revokes_the_whole_family(client, db, team, login_api):
    pair = login_api(team.member, team.workspace)
    newest = client.post("/api/v1/auth/refresh", json={"refresh_token": pair["refresh_token"]}).get_json()["data"]
    replay = client.post(
        "/api/v1/auth/refresh", json={"refresh_token": pair["refresh_token"]}, environ_base={"REMOTE_ADDR": "10.9.9.9"}
    )
    assert replay.status_code == 401
    sibling = client.post(
        "/api/v1/auth/refresh",
        json={"refresh_token": newest["refresh_token"]},
        environ_base={"REMOTE_ADDR": "10.9.9.8"},
    )
    assert sibling.status_code == 401
    db.session.expire_all()
    rows = db.session.scalars(select(RefreshToken).where(RefreshToken.user_id == team.member.id)).all()
    assert rows and all(row.revoked_at is not None for row in rows)


def test_a_replayed_refresh_token_refuses_the_access_tokens_already_issued_from_its_family(client, db, team, login_api):
    pair = login_api(team.member, team.workspace)
    second = client.post("/api/v1/auth/refresh", json={"refresh_token": pair["refresh_token"]}).get_json()["data"]
    other_family = login_api(team.member, team.workspace, ip="10.9.8.1")
    for access in (pair["access_token"], second["access_token"], other_family["access_token"]):
        assert client.get("/api/v1/me", headers=bearer(access)).status_code == 200

    replay = client.post(
        "/api/v1/auth/refresh", json={"refresh_token": pair["refresh_token"]}, environ_base={"REMOTE_ADDR": "10.9.8.2"}
    )
    assert replay.status_code == 401

    # At once, not when they expire 15 minutes later: both access tokens of the family are refused.
    for access in (pair["access_token"], second["access_token"]):
        resp = client.get("/api/v1/me", headers=bearer(access))
        assert resp.status_code == 401
        assert resp.get_json()["error"]["message"] == "The access token was revoked; sign in again."
    # Another sign-in of the same user is another family and keeps working.
    assert client.get("/api/v1/me", headers=bearer(other_family["access_token"])).status_code == 200


def test_an_access_token_without_a_family_is_refused(app, client, team):
    token = _craft(app, sub=str(team.owner.id), workspace_id=team.workspace.id, fam=None)
    assert client.get("/api/v1/me", headers=bearer(token)).status_code == 401


def test_an_access_token_never_outlives_its_family(client, db, team, login_api):
    from datetime import timedelta

    from morket.core.db import utcnow

    pair = login_api(team.member, team.workspace)
    db.session.execute(
        update(RefreshToken)
        .where(RefreshToken.user_id == team.member.id)
        .values(family_expires_at=utcnow() + timedelta(seconds=120))
    )
    db.session.flush()
    second = client.post("/api/v1/auth/refresh", json={"refresh_token": pair["refresh_token"]}).get_json()["data"]
    assert 100 <= second["expires_in"] <= 120


def test_refresh_can_switch_to_another_workspace_of_the_user(client, team, other_team, login_api):
    MembershipFactory(workspace=other_team.workspace, user=team.member, role=VIEWER)
    pair = login_api(team.member, team.workspace)
    resp = client.post(
        "/api/v1/auth/refresh",
        json={"refresh_token": pair["refresh_token"], "workspace": other_team.workspace.slug},
    )
    assert resp.status_code == 200
    switched = resp.get_json()["data"]
    assert switched["workspace"]["id"] == other_team.workspace.id
    assert switched["role"] == "viewer"
    me = client.get("/api/v1/me", headers=bearer(switched["access_token"])).get_json()["data"]
    assert me["workspace"]["id"] == other_team.workspace.id


def test_refresh_into_a_workspace_the_user_is_not_in_is_404_and_keeps_the_token(client, team, other_team, login_api):
    pair = login_api(team.member, team.workspace)
    resp = client.post(
        "/api/v1/auth/refresh",
        json={"refresh_token": pair["refresh_token"], "workspace": other_team.workspace.slug},
    )
    assert resp.status_code == 404
    again = client.post("/api/v1/auth/refresh", json={"refresh_token": pair["refresh_token"]})
    assert again.status_code == 200


def test_at_most_ten_live_refresh_tokens_per_user(client, db, team, login_api):
    pairs = [login_api(team.viewer, team.workspace, ip=f"10.2.0.{i}") for i in range(MAX_LIVE_REFRESH_TOKENS + 1)]
    live = db.session.scalar(
        select(func.count())
        .select_from(RefreshToken)
        .where(
            RefreshToken.user_id == team.viewer.id, RefreshToken.revoked_at.is_(None), RefreshToken.used_at.is_(None)
        )
    )
    assert live == MAX_LIVE_REFRESH_TOKENS
    oldest = client.post("/api/v1/auth/refresh", json={"refresh_token": pairs[0]["refresh_token"]})
    assert oldest.status_code == 401
    newest = client.post("/api/v1/auth/refresh", json={"refresh_token": pairs[-1]["refresh_token"]})
    assert newest.status_code == 200


def test_logout_revokes_the_refresh_family_and_the_access_token(client, team, login_api):
    pair = login_api(team.member, team.workspace)
    resp = client.post(
        "/api/v1/auth/logout", json={"refresh_token": pair["refresh_token"]}, headers=bearer(pair["access_token"])
    )
    assert resp.status_code == 200
    assert resp.get_json()["data"] == {"logged_out": True}
    assert client.get("/api/v1/me", headers=bearer(pair["access_token"])).status_code == 401
    refreshed = client.post("/api/v1/auth/refresh", json={"refresh_token": pair["refresh_token"]})
    assert refreshed.status_code == 401


def test_a_demotion_takes_effect_on_live_tokens_at_once(client, db, team, login_api):
    pair = login_api(team.admin, team.workspace)
    headers = bearer(pair["access_token"])
    assert client.patch("/api/v1/workspace", json={"name": "Renamed"}, headers=headers).status_code == 200
    membership = db.session.scalar(select(Membership).where(Membership.user_id == team.admin.id))
    membership.role = VIEWER
    db.session.flush()
    resp = client.patch("/api/v1/workspace", json={"name": "Again"}, headers=headers)
    assert resp.status_code == 403
    assert client.get("/api/v1/me", headers=headers).get_json()["data"]["role"] == "viewer"


def test_removed_member_and_disabled_user_lose_access_at_once(client, db, team, login_api):
    from morket.core.db import utcnow

    pair = login_api(team.member, team.workspace)
    team.member.disabled_at = utcnow()
    db.session.flush()
    assert client.get("/api/v1/me", headers=bearer(pair["access_token"])).status_code == 401
    assert client.post("/api/v1/auth/refresh", json={"refresh_token": pair["refresh_token"]}).status_code == 401
