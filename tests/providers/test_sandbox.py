"""The sandbox server itself: its rate limit, quota, error rate, control API and throughput."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from tests.providers.conftest import TEST_KEY


def _search(client: httpx.Client, sb, domain: str = "acme.com", key: str = TEST_KEY) -> httpx.Response:
    return client.get(sb.url("hunter") + "/v2/domain-search", params={"domain": domain, "api_key": key})


def test_quota_refuses_requests_past_it_with_hunters_usage_error(sb, http):
    sb.configure("hunter", quota=3)
    statuses = [_search(http, sb).status_code for _ in range(5)]
    assert statuses == [200, 200, 200, 429, 429]
    refused = _search(http, sb)
    assert refused.json()["errors"][0]["id"] == "too_many_requests"
    assert int(refused.headers["Retry-After"]) >= 60
    log = sb.log("hunter")
    assert [e["status"] for e in log] == statuses + [429], log


def test_rate_limit_lets_the_burst_through_then_refills_at_the_rate(sb, http):
    sb.configure("hunter", rate=10, burst=4)
    statuses = [_search(http, sb).status_code for _ in range(6)]
    assert statuses[:4] == [200] * 4 and 429 in statuses[4:]
    retry = next(r for r in (_search(http, sb) for _ in range(3)) if r.status_code == 429)
    assert retry.headers["Retry-After"] == "1"
    time.sleep(0.25)  # at 10/s two tokens come back
    assert _search(http, sb).status_code == 200


def test_each_provider_has_its_own_limits(sb, http):
    sb.configure("hunter", quota=0)
    assert _search(http, sb).status_code == 429
    resp = http.get(
        sb.url("apollo") + "/api/v1/organizations/enrich", params={"domain": "always-acme.com"},
        headers={"X-Api-Key": TEST_KEY},
    )  # fmt: skip
    assert resp.status_code == 200 and resp.json()["organization"]["name"] == "Always Acme"


def test_error_rate_fails_exactly_that_share_of_requests(sb, http):
    sb.configure("hunter", error_rate=0.25, fail_status=502)
    statuses = [_search(http, sb).status_code for _ in range(40)]
    assert statuses.count(502) == 10 and statuses.count(200) == 30


def test_the_same_inputs_give_the_same_data(sb, http):
    first = _search(http, sb, "always-globex.io").json()["data"]
    again = _search(http, sb, "always-globex.io").json()["data"]
    assert first == again and first["emails"]


def test_unknown_keys_are_refused_like_the_real_api(sb, http):
    resp = _search(http, sb, key="pk_live_123")
    assert resp.status_code == 401
    assert resp.json()["errors"][0] == {
        "id": "authentication_failed",
        "code": 401,
        "details": resp.json()["errors"][0]["details"],
    }
    assert _search(http, sb, key="sk-test-abc").status_code == 200


def test_control_api_rejects_bad_settings(sb, http):
    bad = http.post(sb.base + "/_sandbox/config", json={"provider": "hunter", "error_rate": 3})
    unknown = http.post(sb.base + "/_sandbox/config", json={"provider": "nobody", "rate": 3})
    typo = http.post(sb.base + "/_sandbox/config", json={"provider": "hunter", "latency": 3})
    assert (bad.status_code, unknown.status_code, typo.status_code) == (400, 400, 400)
    assert "unknown setting" in typo.json()["error"]
    assert http.get(sb.base + "/_sandbox/config").json()["hunter"]["error_rate"] == 0.0


def test_reset_clears_the_log_and_settings(sb, http):
    sb.configure("hunter", quota=0)
    _search(http, sb)
    sb.reset()
    assert sb.log() == []
    assert _search(http, sb).status_code == 200


@pytest.mark.timeout(60)
def test_sustains_two_hundred_requests_a_second(sb):
    sb.configure("hunter", rate=100000, burst=100000)
    total = 600

    def worker(n: int) -> list[int]:
        with httpx.Client() as client:
            return [_search(client, sb, f"company{n}-{i}.com").status_code for i in range(total // 8)]

    started = time.perf_counter()
    with ThreadPoolExecutor(8) as pool:
        statuses = [s for chunk in pool.map(worker, range(8)) for s in chunk]
    elapsed = time.perf_counter() - started
    assert statuses == [200] * total
    assert total / elapsed >= 200, f"{total / elapsed:.0f} requests/s"
    assert len(sb.log("hunter")) == total
