"""A token bucket and a circuit breaker whose state lives in Redis, shared by every worker.

Each is one Lua script per operation, so a decision is atomic across processes and uses the
Redis server's clock (workers on several machines never disagree about "now"). Redis errors
propagate on purpose: the enrichment engine treats an unreachable Redis as "pause the run",
because limiting from a local guess would break the provider's limit once several workers run.
"""

from __future__ import annotations

import time
from typing import Literal

from redis import Redis

KEY_PREFIX = "morket:throttle:"

# KEYS[1] bucket hash; ARGV rate, burst, take (1 = consume when available, 0 = peek)
# Returns the seconds to wait as a string: "0" when a token was taken.
_BUCKET_TAKE = """
local key = KEYS[1]
local rate = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local state = redis.call('HMGET', key, 'tokens', 'ts', 'blocked')
local blocked = tonumber(state[3] or '0')
if blocked > now then
  return tostring(blocked - now)
end
local tokens = tonumber(state[1] or burst)
local ts = tonumber(state[2] or now)
if ts > now then ts = now end
tokens = math.min(burst, tokens + (now - ts) * rate)
local wait = 0
if tokens >= 1 then
  tokens = tokens - 1
else
  wait = (1 - tokens) / rate
end
redis.call('HSET', key, 'tokens', tostring(tokens), 'ts', tostring(now))
redis.call('PEXPIRE', key, math.ceil((burst / rate + 60) * 1000))
return tostring(wait)
"""

# KEYS[1] bucket hash; ARGV seconds. Empties the bucket until now + seconds (never shortens a block).
_BUCKET_BLOCK = """
local key = KEYS[1]
local seconds = tonumber(ARGV[1])
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local until_ts = now + seconds
local blocked = tonumber(redis.call('HGET', key, 'blocked') or '0')
if blocked > until_ts then until_ts = blocked end
redis.call('HSET', key, 'blocked', tostring(until_ts), 'tokens', '0', 'ts', tostring(until_ts))
redis.call('PEXPIRE', key, math.ceil((until_ts - now + 60) * 1000))
return tostring(until_ts - now)
"""

# KEYS[1] breaker hash; ARGV reset_timeout, probe (1 = may take the half-open probe)
# Returns "closed", "open" or "probe" (this caller holds the one half-open probe).
_BREAKER_ALLOW = """
local key = KEYS[1]
local reset = tonumber(ARGV[1])
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local state = redis.call('HMGET', key, 'state', 'opened_at', 'probe_until')
local s = state[1] or 'closed'
if s == 'closed' then return 'closed' end
local opened_at = tonumber(state[2] or '0')
if now - opened_at < reset then return 'open' end
local probe_until = tonumber(state[3] or '0')
if probe_until > now then return 'busy' end
if ARGV[2] == '1' then
  -- One probe at a time; if it never reports back, another may probe after reset seconds.
  redis.call('HSET', key, 'state', 'half_open', 'probe_until', tostring(now + reset))
  return 'probe'
end
return 'half_open'
"""

# KEYS[1] breaker hash; ARGV ok (1|0), fail_max, ttl
_BREAKER_RECORD = """
local key = KEYS[1]
local ok = ARGV[1] == '1'
local fail_max = tonumber(ARGV[2])
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local s = redis.call('HGET', key, 'state') or 'closed'
if ok then
  if s ~= 'closed' or redis.call('HEXISTS', key, 'failures') == 1 then
    redis.call('DEL', key)
  end
  return 'closed'
end
if s == 'half_open' then
  redis.call('HSET', key, 'state', 'open', 'opened_at', tostring(now), 'probe_until', '0')
  redis.call('PEXPIRE', key, tonumber(ARGV[3]))
  return 'open'
end
if s == 'open' then return 'open' end
local failures = redis.call('HINCRBY', key, 'failures', 1)
if failures >= fail_max then
  redis.call('HSET', key, 'state', 'open', 'opened_at', tostring(now), 'probe_until', '0')
end
redis.call('PEXPIRE', key, tonumber(ARGV[3]))
return redis.call('HGET', key, 'state') or 'closed'
"""


class TokenBucket:
    """Allow ``rate`` calls per second with bursts up to ``burst``, across every process."""

    def __init__(self, redis: Redis, key: str, rate: float, burst: float | None = None) -> None:
        if rate <= 0:
            raise ValueError("rate must be positive")
        self.redis = redis
        self.key = f"{KEY_PREFIX}bucket:{key}"
        self.rate = float(rate)
        self.burst = float(burst if burst is not None else max(rate, 1.0))
        self._take = redis.register_script(_BUCKET_TAKE)
        self._block = redis.register_script(_BUCKET_BLOCK)

    def try_acquire(self) -> float:
        """Take a token if one is there: 0.0 when taken, else the seconds until one may be."""
        return float(self._take(keys=[self.key], args=[self.rate, self.burst]))

    def acquire(self, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds for a token; False when none came in time."""
        deadline = time.monotonic() + timeout
        while True:
            wait = self.try_acquire()
            if wait <= 0:
                return True
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            time.sleep(min(wait, left))

    def block_for(self, seconds: float) -> float:
        """Stop every worker from taking tokens for ``seconds`` (a provider's Retry-After)."""
        return float(self._block(keys=[self.key], args=[max(float(seconds), 0.0)]))


BreakerState = Literal["closed", "open", "half_open"]


class CircuitBreaker:
    """Stop calling a provider after ``fail_max`` failures in a row; probe after ``reset_timeout``.

    closed: calls pass, consecutive failures are counted. open: calls are refused until
    ``reset_timeout`` has passed. half_open: exactly one caller gets to probe; its success closes
    the breaker, its failure opens it for another ``reset_timeout``.
    """

    def __init__(self, redis: Redis, key: str, fail_max: int = 5, reset_timeout: float = 30) -> None:
        self.redis = redis
        self.key = f"{KEY_PREFIX}breaker:{key}"
        self.fail_max = int(fail_max)
        self.reset_timeout = float(reset_timeout)
        self._allow = redis.register_script(_BREAKER_ALLOW)
        self._record = redis.register_script(_BREAKER_RECORD)
        # Keep an open breaker's state long enough to outlive its timeout, then forget it.
        self._ttl_ms = int((self.reset_timeout * 4 + 600) * 1000)

    def allow(self) -> bool:
        """May a call go out now? In half_open only the one caller holding the probe gets True."""
        return self._decode(self._allow(keys=[self.key], args=[self.reset_timeout, 1])) in ("closed", "probe")

    def record_success(self) -> None:
        """A call succeeded (or failed for a reason that is not the provider's health)."""
        self._record(keys=[self.key], args=[1, self.fail_max, self._ttl_ms])

    def record_failure(self) -> None:
        """A call failed in a way that says the provider is unwell (5xx, timeout)."""
        self._record(keys=[self.key], args=[0, self.fail_max, self._ttl_ms])

    @property
    def state(self) -> BreakerState:
        """The breaker's state as a caller would see it now (without taking the probe)."""
        answer = self._decode(self._allow(keys=[self.key], args=[self.reset_timeout, 0]))
        if answer == "closed":
            return "closed"
        if answer in ("half_open", "busy"):
            return "half_open"
        return "open"

    @staticmethod
    def _decode(value: bytes | str) -> str:
        return value.decode() if isinstance(value, bytes) else str(value)

    def reset(self) -> None:
        """Forget the breaker's state (tests and the admin console)."""
        self.redis.delete(self.key)
