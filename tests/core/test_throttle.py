"""The shared token bucket and circuit breaker, on the real Redis, across several clients."""

from __future__ import annotations

import threading
import time
import uuid

import pytest
from redis import Redis
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.retry import Retry

from morket.core.throttle import CircuitBreaker, TokenBucket


@pytest.fixture
def redis(services) -> Redis:
    conn = Redis.from_url(services["redis"])
    yield conn
    conn.close()


def _key() -> str:
    return f"test-{uuid.uuid4().hex}"


def test_bucket_allows_its_burst_then_names_the_wait(redis):
    bucket = TokenBucket(redis, _key(), rate=2, burst=3)
    assert [bucket.try_acquire() for _ in range(3)] == [0.0, 0.0, 0.0]
    wait = bucket.try_acquire()
    assert 0 < wait <= 0.5 + 0.05


def test_bucket_is_shared_by_separate_connections(services):
    key = _key()
    one, two = Redis.from_url(services["redis"]), Redis.from_url(services["redis"])
    try:
        taken = [TokenBucket(c, key, rate=0.5, burst=4).try_acquire() == 0 for c in (one, two, one, two, one, two)]
    finally:
        one.close()
        two.close()
    assert taken.count(True) == 4


def test_bucket_holds_its_rate_under_threads(redis):
    """Eight threads hammering a 20/s bucket with burst 1 get about 20 tokens a second, never more."""
    bucket = TokenBucket(redis, _key(), rate=20, burst=1)
    got: list[float] = []
    stop = time.monotonic() + 1.0

    def worker() -> None:
        while time.monotonic() < stop:
            if bucket.acquire(timeout=max(stop - time.monotonic(), 0)):
                got.append(time.monotonic())

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    # 1 initial token + 20/s over one second; the upper bound is what matters for the provider.
    assert len(got) <= 22
    assert len(got) >= 15


def test_block_for_stops_every_client_until_it_ends(redis, services):
    key = _key()
    bucket = TokenBucket(redis, key, rate=100, burst=100)
    assert bucket.try_acquire() == 0
    bucket.block_for(0.3)
    other = TokenBucket(Redis.from_url(services["redis"]), key, rate=100, burst=100)
    wait = other.try_acquire()
    assert 0.2 < wait <= 0.3
    # A shorter Retry-After from another worker never shortens the block.
    bucket.block_for(0.01)
    assert other.try_acquire() > 0.1
    assert other.acquire(timeout=1.0)


def test_acquire_gives_up_after_its_timeout(redis):
    bucket = TokenBucket(redis, _key(), rate=0.1, burst=1)
    assert bucket.acquire(timeout=0.01)
    assert not bucket.acquire(timeout=0.05)


def test_breaker_opens_after_fail_max_failures_in_a_row(redis):
    breaker = CircuitBreaker(redis, _key(), fail_max=3, reset_timeout=30)
    breaker.record_failure()
    breaker.record_failure()
    breaker.record_success()  # a success in between resets the count
    breaker.record_failure()
    breaker.record_failure()
    assert breaker.state == "closed" and breaker.allow()
    breaker.record_failure()
    assert breaker.state == "open"
    assert not breaker.allow()


def test_breaker_half_opens_to_one_probe_and_closes_on_success(redis, services):
    key = _key()
    breaker = CircuitBreaker(redis, key, fail_max=1, reset_timeout=0.2)
    other = CircuitBreaker(Redis.from_url(services["redis"]), key, fail_max=1, reset_timeout=0.2)
    breaker.record_failure()
    assert not other.allow()
    time.sleep(0.25)
    assert other.state == "half_open"
    assert breaker.allow()  # this caller holds the probe
    assert not other.allow()  # everyone else waits for its answer
    assert other.state == "half_open"
    breaker.record_success()
    assert other.state == "closed"
    assert other.allow()


def test_breaker_probe_failure_opens_it_again(redis):
    breaker = CircuitBreaker(redis, _key(), fail_max=2, reset_timeout=0.2)
    breaker.record_failure()
    breaker.record_failure()
    time.sleep(0.25)
    assert breaker.allow()
    breaker.record_failure()
    assert breaker.state == "open"
    assert not breaker.allow()


def test_admit_takes_a_token_only_when_the_breaker_lets_the_call_through(redis):
    breaker = CircuitBreaker(redis, _key(), fail_max=1, reset_timeout=0.2)
    bucket = TokenBucket(redis, _key(), rate=1, burst=2)
    first = breaker.admit(bucket)
    assert first.allowed and first.wait == 0.0 and first.clean
    breaker.record_failure()
    refused = breaker.admit(bucket)
    assert not refused.allowed and not refused.clean
    # The refusal took no token: the bucket still holds the second one.
    assert bucket.try_acquire() == 0.0
    assert bucket.try_acquire() > 0
    time.sleep(0.25)
    probe = breaker.admit(bucket)
    assert probe.allowed and not probe.clean  # this caller holds the half-open probe
    assert 0 < probe.wait <= 1.0  # ... and the empty bucket names its wait
    assert not breaker.admit(bucket).allowed  # nobody else probes meanwhile


def test_admit_reports_a_counted_failure_as_state_to_reset(redis):
    breaker = CircuitBreaker(redis, _key(), fail_max=3, reset_timeout=30)
    bucket = TokenBucket(redis, _key(), rate=100)
    breaker.record_failure()
    admission = breaker.admit(bucket)
    assert admission.allowed and not admission.clean
    breaker.record_success()
    assert breaker.admit(bucket).clean


def test_redis_errors_propagate():
    dead = Redis(host="127.0.0.1", port=1, socket_connect_timeout=0.2, retry=Retry(NoBackoff(), 0))
    with pytest.raises(RedisConnectionError):
        TokenBucket(dead, _key(), rate=1).try_acquire()
    with pytest.raises(RedisConnectionError):
        CircuitBreaker(dead, _key()).allow()
    with pytest.raises(RedisConnectionError):
        CircuitBreaker(dead, _key()).admit(TokenBucket(dead, _key(), rate=1))


def test_window_admits_its_limit_at_once_then_waits_for_the_oldest_answer(redis):
    from morket.core.throttle import SlidingWindow

    window = SlidingWindow(redis, _key(), limit=3, interval=0.6)
    slots = [window.try_acquire() for _ in range(3)]
    assert all(wait == 0.0 and slot for wait, slot in slots)
    wait, slot = window.try_acquire()
    assert slot is None and 0.5 < wait <= 0.6
    time.sleep(0.3)
    for _, slot in slots:  # the answers came back late: their slots count from now
        window.done(slot)
    assert window.acquire(timeout=0.45) is None
    assert window.acquire(timeout=0.4) is not None


def test_window_counts_calls_the_crm_says_others_made(redis):
    from morket.core.throttle import SlidingWindow

    window = SlidingWindow(redis, _key(), limit=5, interval=5)
    _, slot = window.try_acquire()
    window.done(slot, remaining=1)  # the CRM counted 4 calls: three of them someone else's
    assert window.try_acquire()[1] is not None
    wait, slot = window.try_acquire()
    assert slot is None and wait > 4


def test_window_block_holds_every_caller(redis):
    from morket.core.throttle import SlidingWindow

    key = _key()
    SlidingWindow(redis, key, limit=100, interval=10).block_for(0.3)
    wait, slot = SlidingWindow(redis, key, limit=100, interval=10).try_acquire()
    assert slot is None and 0.2 < wait <= 0.3


def test_window_takes_no_call_of_ours_that_expired_in_flight_for_someone_elses(redis):
    """A slow answer: our two earlier calls leave the window while it is in flight (and another
    worker's call meanwhile tidies the window), but the CRM counted them when the call reached it
    (remaining 0). They are ours, not another app's: no phantom calls hold the window an interval."""
    from morket.core.throttle import SlidingWindow

    key = _key()
    window = SlidingWindow(redis, key, limit=3, interval=0.5)
    for slot in [window.try_acquire()[1] for _ in range(2)]:
        window.done(slot, remaining=1)
    time.sleep(0.45)
    _, slow = window.try_acquire()
    assert slow is not None
    time.sleep(0.15)  # the first two expire from our window before the answer is back
    assert SlidingWindow(redis, key, limit=3, interval=0.5).try_acquire()[1] is not None  # another worker
    window.done(slow, remaining=0)
    assert window.try_acquire()[1] is not None  # the third slot is free at once
    wait, slot = window.try_acquire()
    assert slot is None and wait > 0.3
