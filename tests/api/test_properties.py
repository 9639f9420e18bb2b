"""Property tests: whatever a client sends to the auth and member endpoints, the answer is an envelope, never a 5xx."""

from __future__ import annotations

import itertools

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from morket.core.ratelimit import clear_rate_limits
from morket.workspaces.models import Membership
from tests.api.conftest import bearer
from tests.factories import PASSWORD

SETTINGS = settings(
    max_examples=100, deadline=None, database=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=40),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4),
    max_leaves=10,
)
text_or_junk = st.one_of(
    st.text(max_size=300), st.just("nul\x00byte"), st.integers(), st.none(), st.lists(st.text(max_size=5), max_size=2)
)


def _payloads(fields: dict) -> st.SearchStrategy:
    return st.one_of(st.fixed_dictionaries(fields), st.fixed_dictionaries({}, optional=fields), json_values)


def _assert_envelope(resp, allowed: set[int]) -> None:
    assert resp.status_code < 500, resp.get_data(as_text=True)[:300]
    assert resp.status_code in allowed, resp.status_code
    body = resp.get_json()
    assert set(body) == {"success", "data", "error", "meta"}
    if resp.status_code >= 400:
        assert body["success"] is False and isinstance(body["error"]["message"], str) and body["error"]["message"]
        assert all(isinstance(v, list) for v in body["error"]["fields"].values())


def test_token_endpoint_answers_any_payload_with_an_envelope(client, team):
    ips = itertools.count(1)
    seen: set[int] = set()
    fields = {
        "email": st.one_of(st.just(team.member.email), st.emails(), text_or_junk),
        "password": st.one_of(st.just(PASSWORD), text_or_junk),
        "workspace": st.one_of(st.just(team.workspace.slug), text_or_junk),
    }

    @SETTINGS
    @given(payload=_payloads(fields))
    @example(payload={"email": team.member.email, "password": PASSWORD, "workspace": team.workspace.slug})
    def check(payload):
        ip = next(ips)
        resp = client.post(
            "/api/v1/auth/token", json=payload, environ_base={"REMOTE_ADDR": f"10.{ip // 250}.{ip % 250}.9"}
        )
        _assert_envelope(resp, {200, 401, 403, 404, 422, 423})
        seen.add(resp.status_code)

    check()
    assert {200, 422} <= seen, seen


def test_refresh_endpoint_answers_any_payload_with_an_envelope(client, team, login_api):
    live = login_api(team.member, team.workspace)["refresh_token"]
    seen: set[int] = set()
    ips = itertools.count(1)
    fields = {
        "refresh_token": st.one_of(st.just(live), text_or_junk),
        "workspace": st.one_of(st.just(team.workspace.slug), text_or_junk),
    }

    @SETTINGS
    @given(payload=_payloads(fields))
    def check(payload):
        ip = next(ips)
        resp = client.post(
            "/api/v1/auth/refresh", json=payload, environ_base={"REMOTE_ADDR": f"10.{ip // 250}.{ip % 250}.8"}
        )
        _assert_envelope(resp, {200, 401, 404, 422})
        seen.add(resp.status_code)

    check()
    assert {401, 422} <= seen, seen


def test_member_update_answers_any_payload_with_an_envelope(app, client, db, team, login_api):
    headers = bearer(login_api(team.owner, team.workspace)["access_token"])
    ids = list(db.session.scalars(select(Membership.id).where(Membership.workspace_id == team.workspace.id)))
    fields = {"role": st.one_of(st.sampled_from(["owner", "admin", "member", "viewer", "billing_admin"]), text_or_junk)}

    member = db.session.scalar(
        select(Membership.id).where(Membership.workspace_id == team.workspace.id, Membership.user_id == team.member.id)
    )

    # Examples run first: a valid change is always seen, whatever the generated ones do next (one may
    # demote the owner, after which every change is refused).
    @SETTINGS
    @example(payload={"role": "viewer"}, member_id=member)
    @example(payload={"role": "nobody"}, member_id=member)
    @example(payload={"role": "viewer"}, member_id=2**62)
    @given(
        payload=_payloads(fields), member_id=st.one_of(st.sampled_from(ids), st.integers(min_value=0, max_value=2**70))
    )
    def check(payload, member_id):
        clear_rate_limits()
        resp = client.patch(f"/api/v1/members/{member_id}", json=payload, headers=headers)
        _assert_envelope(resp, {200, 403, 404, 409, 422})
        seen.add(resp.status_code)

    seen: set[int] = set()
    with app.app_context():
        check()
    assert {200, 404, 422} <= seen, seen


def test_any_bearer_credential_is_refused_cleanly(client, db):
    credential = st.one_of(
        st.text(alphabet=st.characters(min_codepoint=33, max_codepoint=255), min_size=1, max_size=200),
        st.text(alphabet=st.characters(min_codepoint=33, max_codepoint=126), min_size=1, max_size=40).map(
            lambda s: "mk_live_" + s
        ),
        st.lists(
            st.text(alphabet="abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_", max_size=60),
            min_size=3,
            max_size=3,
        ).map(".".join),
    )

    @SETTINGS
    @given(token=credential)
    def check(token):
        resp = client.get("/api/v1/me", headers={"Authorization": f"Bearer {token}"})
        _assert_envelope(resp, {401})

    check()
