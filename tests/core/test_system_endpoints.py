"""/healthz, /readiness and /metrics answer what an operator's probes and scrapers expect."""

from prometheus_client.parser import text_string_to_metric_families

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


def _requests_total(client, route: str) -> float:
    resp = client.get("/metrics")
    assert resp.status_code == 200
    assert resp.mimetype == "text/plain"
    total = 0.0
    for family in text_string_to_metric_families(resp.get_data(as_text=True)):
        if family.name == "morket_http_requests":
            for sample in family.samples:
                if sample.name == "morket_http_requests_total" and sample.labels.get("route") == route:
                    total += sample.value
    return total


def test_metrics_count_a_request_by_its_route_not_its_url(client):
    before = _requests_total(client, "/healthz")
    assert client.get("/healthz").status_code == 200
    assert _requests_total(client, "/healthz") == before + 1


def test_metrics_label_unknown_paths_as_one_route(client):
    before = _requests_total(client, "unmatched")
    client.get("/no-such-page-1")
    client.get("/no-such-page-2")
    assert _requests_total(client, "unmatched") == before + 2
    body = client.get("/metrics").get_data(as_text=True)
    assert "/no-such-page-1" not in body
