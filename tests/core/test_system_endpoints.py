"""/healthz, /readiness and /metrics answer what an operator's probes and scrapers expect."""

import pytest
from prometheus_client.parser import text_string_to_metric_families

from morket.config import load_settings
from morket.devservices import EmbeddedRedis


def test_readiness_is_200_when_postgres_and_redis_answer(client):
    resp = client.get("/readiness")
    assert resp.status_code == 200
    assert resp.get_json() == {"status": "ready", "checks": {"postgres": "ok", "redis": "ok"}}


def test_readiness_is_503_naming_redis_when_redis_is_down(make_app, tmp_path):
    redis = EmbeddedRedis(tmp_path / "valkey").start()
    try:
        app = make_app(REDIS_URL=redis.url)
        client = app.test_client()
        assert client.get("/readiness").status_code == 200
        redis.stop()
        resp = client.get("/readiness")
    finally:
        redis.stop()
        app.extensions["morket_redis"].close()
    assert resp.status_code == 503
    body = resp.get_json()
    assert body["status"] == "unavailable"
    assert body["checks"] == {"postgres": "ok", "redis": "unavailable"}


METRICS_TOKEN = "scraper-token-0123456789abcdef"


@pytest.fixture
def metrics_token(app, monkeypatch):
    """/metrics with MORKET_METRICS_TOKEN set (for this test only)."""
    monkeypatch.setitem(app.config["MORKET"], "METRICS_TOKEN", METRICS_TOKEN)
    return {"Authorization": f"Bearer {METRICS_TOKEN}"}


@pytest.fixture
def metrics_network(app, monkeypatch):
    """/metrics open to scrapers in 10.20.0.0/16 and fd00:20::/32 (for this test only)."""
    allowed = load_settings({"MORKET_METRICS_ALLOW": "10.20.0.0/16, fd00:20::/32"})["METRICS_ALLOW"]
    monkeypatch.setitem(app.config["MORKET"], "METRICS_ALLOW", allowed)


def _requests_total(client, route: str, headers: dict[str, str]) -> float:
    resp = client.get("/metrics", headers=headers)
    assert resp.status_code == 200
    assert resp.mimetype == "text/plain"
    total = 0.0
    for family in text_string_to_metric_families(resp.get_data(as_text=True)):
        if family.name == "morket_http_requests":
            for sample in family.samples:
                if sample.name == "morket_http_requests_total" and sample.labels.get("route") == route:
                    total += sample.value
    return total


def test_metrics_count_a_request_by_its_route_not_its_url(client, metrics_token):
    before = _requests_total(client, "/healthz", metrics_token)
    assert client.get("/healthz").status_code == 200
    assert _requests_total(client, "/healthz", metrics_token) == before + 1


def test_metrics_label_unknown_paths_as_one_route(client, metrics_token):
    before = _requests_total(client, "unmatched", metrics_token)
    client.get("/no-such-page-1")
    client.get("/no-such-page-2")
    assert _requests_total(client, "unmatched", metrics_token) == before + 2
    body = client.get("/metrics", headers=metrics_token).get_data(as_text=True)
    assert "/no-such-page-1" not in body


def _is_exposition(resp) -> bool:
    return resp.status_code == 200 and "morket_http_requests_total" in resp.get_data(as_text=True)


def test_metrics_are_off_until_a_token_or_a_network_is_configured(client):
    resp = client.get("/metrics")
    assert resp.status_code == 404
    assert "morket_http" not in resp.get_data(as_text=True)


def test_metrics_answer_only_the_configured_token(client, metrics_token):
    for headers in ({}, {"Authorization": "Bearer wrong-token"}, {"Authorization": METRICS_TOKEN}):
        resp = client.get("/metrics", headers=headers)
        assert resp.status_code == 401, headers
        assert resp.headers["WWW-Authenticate"] == 'Bearer realm="morket-metrics"'
        assert "morket_http" not in resp.get_data(as_text=True)
    assert _is_exposition(client.get("/metrics", headers=metrics_token))


def test_metrics_answer_scrapers_on_an_allowed_network(client, metrics_network):
    def scrape(peer: str, **headers: str):
        return client.get("/metrics", headers=headers, environ_base={"REMOTE_ADDR": peer})

    assert _is_exposition(scrape("10.20.3.4"))
    assert _is_exposition(scrape("fd00:20::7"))
    assert scrape("10.21.0.1").status_code == 401
    assert scrape("127.0.0.1").status_code == 401
    # A public caller behind an allowed load balancer, and a forged forwarded address, are refused.
    assert scrape("10.20.0.2", **{"X-Forwarded-For": "203.0.113.9"}).status_code == 401
    assert scrape("203.0.113.9", **{"X-Forwarded-For": "10.20.0.5"}).status_code == 401
    assert _is_exposition(scrape("10.20.0.2", **{"X-Forwarded-For": "10.20.9.9"}))


def test_metrics_are_rate_limited(client, metrics_token):
    answers = [client.get("/metrics", headers=metrics_token).status_code for _ in range(61)]
    assert answers[:60] == [200] * 60
    assert answers[60] == 429
