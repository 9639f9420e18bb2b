"""Rate limits answer 429 with Retry-After: an HTML page on pages, the JSON envelope on the API."""

from datetime import UTC, datetime

from morket.accounts.models import User
from morket.workspaces.models import Membership, Workspace


def test_the_general_page_limit_is_100_a_minute_per_ip(client):
    for _ in range(100):
        assert client.get("/").status_code == 200
    resp = client.get("/")
    assert resp.status_code == 429
    assert 1 <= int(resp.headers["Retry-After"]) <= 60
    assert resp.mimetype == "text/html"
    assert "Slow down" in resp.get_data(as_text=True)
    other_ip = client.get("/", environ_base={"REMOTE_ADDR": "192.0.2.77"})
    assert other_ip.status_code == 200


def test_exempt_probes_are_never_limited(client):
    for _ in range(105):
        assert client.get("/healthz").status_code == 200


def _api_token(db) -> str:
    from morket.api.tokens import issue_token_pair

    user = User(email="limits@example.com", name="Lim", password_hash="!", email_verified_at=datetime.now(UTC))
    workspace = Workspace(slug="limits", name="Limits")
    db.session.add_all([user, workspace])
    db.session.flush()
    membership = Membership(workspace_id=workspace.id, user_id=user.id, role="member")
    db.session.add(membership)
    db.session.flush()
    return issue_token_pair(membership).access_token


def test_the_general_api_limit_is_100_a_minute_per_principal_with_an_envelope(client, db):
    headers = {"Authorization": f"Bearer {_api_token(db)}"}
    for _ in range(100):
        assert client.get("/api/v1/me", headers=headers).status_code == 200
    resp = client.get("/api/v1/me", headers=headers)
    assert resp.status_code == 429
    assert 1 <= int(resp.headers["Retry-After"]) <= 60
    body = resp.get_json()
    assert body["success"] is False
    assert body["data"] is None
    assert body["error"]["code"] == "rate_limited"
    # The limit belongs to the token, not to the address: the same IP without it is not throttled.
    assert client.get("/").status_code == 200


def test_another_app_in_the_process_does_not_take_over_the_limits(client, make_app):
    """A second app (a live test server, a CLI) bound to another store, here one that is down, must
    not re-point this app's limits: they still count in this app's own Redis."""
    make_app(RATELIMIT_STORAGE_URI="redis://127.0.0.1:9/0")
    for _ in range(100):
        assert client.get("/").status_code == 200
    assert client.get("/").status_code == 429


def test_headers_come_from_the_hit_and_match_a_separate_read(app):
    """The moving window's hit brings back the window for the X-RateLimit-* headers: the same
    figures as limits' own read just after it, accepted or refused."""
    from flask import current_app
    from limits import parse
    from limits.strategies import MovingWindowRateLimiter

    from morket.core.ratelimit import MovingWindowFromHit
    from morket.extensions import limiter

    item = parse("3/minute")
    with app.test_request_context("/"):
        strategy = limiter.limiter
        assert isinstance(strategy, MovingWindowFromHit)
        plain = MovingWindowRateLimiter(current_app.extensions["morket_limiter"][0])
        results = []
        for _ in range(4):
            results.append(strategy.hit(item, "headers-test"))
            ours, theirs = strategy.get_window_stats(item, "headers-test"), plain.get_window_stats(item, "headers-test")
            assert ours.remaining == theirs.remaining
            assert abs(ours.reset_time - theirs.reset_time) < 0.01
        assert results == [True, True, True, False]
        assert strategy.get_window_stats(item, "headers-test").remaining == 0
    with app.test_request_context("/"):  # a request that did not hit reads the window from Redis
        assert limiter.limiter.get_window_stats(item, "headers-test").remaining == 0


def test_page_headers_count_down_and_the_429_keeps_them(client):
    seen = [client.get("/") for _ in range(100)]
    assert [r.headers["X-RateLimit-Remaining"] for r in seen[:3]] == ["99", "98", "97"]
    assert seen[-1].headers["X-RateLimit-Remaining"] == "0"
    assert len({r.headers["X-RateLimit-Reset"] for r in seen}) == 1
    refused = client.get("/")
    assert refused.status_code == 429
    assert refused.headers["X-RateLimit-Limit"] == "100"
    assert refused.headers["X-RateLimit-Remaining"] == "0"
    assert refused.headers["X-RateLimit-Reset"] == seen[0].headers["X-RateLimit-Reset"]
    assert 1 <= int(refused.headers["Retry-After"]) <= 61


def test_clearing_the_counters_clears_a_real_counter(client):
    """Property tests clear the counters between examples; the keys matched must be the real ones."""
    from morket.core.ratelimit import clear_rate_limits

    for _ in range(100):
        assert client.get("/").status_code == 200
    assert client.get("/").status_code == 429
    with client.application.app_context():
        assert clear_rate_limits() >= 1
    assert client.get("/").status_code == 200
