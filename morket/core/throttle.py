"""A token bucket and a circuit breaker whose state lives in Redis, shared by every worker.

Each is one Lua script per operation, so a decision is atomic across processes and uses the
Redis server's clock (workers on several machines never disagree about "now"). Redis errors
propagate on purpose: the enrichment engine treats an unreachable Redis as "pause the run",
because limiting from a local guess would break the provider's limit once several workers run.
"""

from __future__ import annotations

import time
import uuid
from typing import Literal, NamedTuple

from redis import Redis

KEY_PREFIX = "morket:throttle:"

# Lua shared by the scripts below: the server's clock, a bucket's take and a breaker's verdict.
_NOW = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
"""

# take(key, rate, burst): the seconds to wait, 0 when a token was taken.
_TAKE = """
local function take(key, rate, burst)
  local state = redis.call('HMGET', key, 'tokens', 'ts', 'blocked')
  local blocked = tonumber(state[3] or '0')
  if blocked > now then
    return blocked - now
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
  return wait
end
"""

# verdict(key, reset, probe): "closed", "open", "busy", "probe" (this caller holds the one half-open
# probe; only when probe is true) or "half_open"; and whether the breaker holds no state at all
# (no failures counted), in which case a success has nothing to reset.
_VERDICT = """
local function verdict(key, reset, probe)
  local state = redis.call('HMGET', key, 'state', 'opened_at', 'probe_until', 'failures')
  local clean = (not state[1]) and (not state[4])
  local s = state[1] or 'closed'
  if s == 'closed' then return 'closed', clean end
  local opened_at = tonumber(state[2] or '0')
  if now - opened_at < reset then return 'open', false end
  local probe_until = tonumber(state[3] or '0')
  if probe_until > now then return 'busy', false end
  if probe then
    -- One probe at a time; if it never reports back, another may probe after reset seconds.
    redis.call('HSET', key, 'state', 'half_open', 'probe_until', tostring(now + reset))
    return 'probe', false
  end
  return 'half_open', false
end
"""

# KEYS[1] bucket hash; ARGV rate, burst. Returns the seconds to wait as a string: "0" when taken.
_BUCKET_TAKE = _NOW + _TAKE + "return tostring(take(KEYS[1], tonumber(ARGV[1]), tonumber(ARGV[2])))"

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

# KEYS[1] breaker hash; ARGV reset_timeout, probe (1 = may take the half-open probe).
_BREAKER_ALLOW = _NOW + _VERDICT + "local v = verdict(KEYS[1], tonumber(ARGV[1]), ARGV[2] == '1') return v"

# KEYS[1] breaker hash, KEYS[2] bucket hash; ARGV reset_timeout, rate, burst. The breaker's verdict
# (taking the probe when there is one) and, only when it lets the call through, a token: one round
# trip for what a call needs before it goes out. Returns {verdict, wait, clean}.
_ADMIT = (
    _NOW
    + _VERDICT
    + _TAKE
    + """
local v, clean = verdict(KEYS[1], tonumber(ARGV[1]), true)
local c = clean and '1' or '0'
if v ~= 'closed' and v ~= 'probe' then return {v, '0', c} end
return {v, tostring(take(KEYS[2], tonumber(ARGV[2]), tonumber(ARGV[3]))), c}
"""
)

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

    def acquire(self, timeout: float, *, wait: float | None = None) -> bool:
        """Wait up to ``timeout`` seconds for a token; False when none came in time.

        ``wait``: what a try made just before (``CircuitBreaker.admit``) answered, so the first
        round trip is not repeated."""
        deadline = time.monotonic() + timeout
        while True:
            if wait is None:
                wait = self.try_acquire()
            if wait <= 0:
                return True
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            time.sleep(min(wait, left))
            wait = None

    def block_for(self, seconds: float) -> float:
        """Stop every worker from taking tokens for ``seconds`` (a provider's Retry-After)."""
        return float(self._block(keys=[self.key], args=[max(float(seconds), 0.0)]))


BreakerState = Literal["closed", "open", "half_open"]


class Admission(NamedTuple):
    """A breaker's and a bucket's answer for one call (``CircuitBreaker.admit``)."""

    allowed: bool  # the breaker lets the call through (closed, or this caller holds the probe)
    wait: float  # 0.0 when a token was taken, else the seconds until one may be
    clean: bool  # the breaker held no state: a success need not be recorded


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
        self._admit = redis.register_script(_ADMIT)
        # Keep an open breaker's state long enough to outlive its timeout, then forget it.
        self._ttl_ms = int((self.reset_timeout * 4 + 600) * 1000)

    def allow(self) -> bool:
        """May a call go out now? In half_open only the one caller holding the probe gets True."""
        return self._decode(self._allow(keys=[self.key], args=[self.reset_timeout, 1])) in ("closed", "probe")

    def admit(self, bucket: TokenBucket) -> Admission:
        """May a call go out now, and did it get a token? One round trip for both.

        As ``allow`` followed by ``bucket.try_acquire`` when allowed; the token is not taken when the
        breaker refuses. ``Admission.clean`` says the breaker held no state (no failure counted), so
        a success that follows has nothing to reset and need not be recorded."""
        verdict, wait, clean = self._admit(
            keys=[self.key, bucket.key], args=[self.reset_timeout, bucket.rate, bucket.burst]
        )
        allowed = self._decode(verdict) in ("closed", "probe")
        return Admission(allowed, float(wait) if allowed else 0.0, self._decode(clean) == "1")

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


# KEYS[1] window (sorted set of call stamps), KEYS[2] block stamp; ARGV limit, interval, slot id.
# Returns the seconds to wait as a string: "0" when the slot was taken (stamped now). Stamps are
# kept two intervals (``done`` looks back an interval from a send that may be a while ago); the
# window counts those of the last interval.
_WINDOW_TAKE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local limit, interval = tonumber(ARGV[1]), tonumber(ARGV[2])
local blocked = tonumber(redis.call('GET', KEYS[2]) or '0')
if blocked > now then return tostring(blocked - now) end
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - 2 * interval)
local since = '(' .. string.format('%.6f', now - interval)
local n = redis.call('ZCOUNT', KEYS[1], since, '+inf')
if n >= limit then
  local oldest = redis.call('ZRANGEBYSCORE', KEYS[1], since, '+inf', 'WITHSCORES', 'LIMIT', 0, n - limit + 1)
  return tostring(math.max(0.001, tonumber(oldest[#oldest]) + interval - now))
end
redis.call('ZADD', KEYS[1], now, ARGV[3])
redis.call('PEXPIRE', KEYS[1], math.ceil(interval * 2000) + 60000)
return '0'
"""

# KEYS[1] window; ARGV limit, interval, slot id, remaining (-1: unknown). The call's answer came
# back: its slot is stamped now (the CRM counted it no later than that). When the CRM says fewer
# calls remain than ours explain, the difference (someone else's calls) is stamped too. The CRM
# counted ``remaining`` when the call reached it, after it was sent: ours are the stamps from an
# interval before the send on (stamps are kept two intervals, so none of ours that left our window
# while the call was in flight passes for someone else's), and the others' calls, made before the
# send, are stamped at the send (they leave the CRM's window by then + interval).
_WINDOW_DONE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local limit, interval, remaining = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[4])
local sent = tonumber(redis.call('ZSCORE', KEYS[1], ARGV[3]) or now)
redis.call('ZADD', KEYS[1], now, ARGV[3])
if remaining >= 0 then
  local others = (limit - remaining) - redis.call('ZCOUNT', KEYS[1], string.format('%.6f', sent - interval), '+inf')
  for i = 1, math.min(others, limit) do
    redis.call('ZADD', KEYS[1], sent, ARGV[3] .. ':' .. i)
  end
end
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - 2 * interval)
redis.call('PEXPIRE', KEYS[1], math.ceil(interval * 2000) + 60000)
return 0
"""

# KEYS[1] block stamp; ARGV seconds. Blocks until now + seconds (never shortens a block).
_WINDOW_BLOCK = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local until_ts = now + tonumber(ARGV[1])
local blocked = tonumber(redis.call('GET', KEYS[1]) or '0')
if blocked > until_ts then until_ts = blocked end
redis.call('SET', KEYS[1], tostring(until_ts), 'PX', math.ceil((until_ts - now) * 1000) + 1000)
return tostring(until_ts - now)
"""


class SlidingWindow:
    """At most ``limit`` calls in any ``interval`` seconds, across every process: a rolling window.

    The shape of a CRM's own limit (HubSpot: N calls per rolling ten seconds), so a whole window
    may go out at once and every freed slot is used the moment it frees, where a token bucket at
    the same average rate leaves part of each window unused. A slot is taken when the call is
    sent and stamped again when its answer is back (``done``): the CRM counted the call between
    the two, so a slot reused ``interval`` after its answer can never overlap it in the CRM's window.
    """

    def __init__(self, redis: Redis, key: str, limit: int, interval: float) -> None:
        if limit < 1 or interval <= 0:
            raise ValueError("limit and interval must be positive")
        self.redis = redis
        self.key = f"{KEY_PREFIX}window:{key}"
        self.block_key = f"{self.key}:blocked"
        self.limit = int(limit)
        self.interval = float(interval)
        self._take = redis.register_script(_WINDOW_TAKE)
        self._done = redis.register_script(_WINDOW_DONE)
        self._block = redis.register_script(_WINDOW_BLOCK)

    def try_acquire(self) -> tuple[float, str | None]:
        """(0.0, slot) when a slot was taken, else (seconds until one may free, None)."""
        slot = uuid.uuid4().hex
        wait = float(self._take(keys=[self.key, self.block_key], args=[self.limit, self.interval, slot]))
        return (0.0, slot) if wait <= 0 else (wait, None)

    def acquire(self, timeout: float) -> str | None:
        """Wait up to ``timeout`` seconds for a slot; its id, or None when none freed in time."""
        deadline = time.monotonic() + timeout
        while True:
            wait, slot = self.try_acquire()
            if slot is not None:
                return slot
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            time.sleep(min(wait, left))

    def done(self, slot: str, remaining: int | None = None) -> None:
        """The call of ``slot`` was answered; ``remaining``: what the CRM says is left of its window."""
        args = [self.limit, self.interval, slot, -1 if remaining is None else max(0, int(remaining))]
        self._done(keys=[self.key], args=args)

    def block_for(self, seconds: float) -> None:
        """No slot for anyone for ``seconds`` (a 429's Retry-After); never shortens a longer block."""
        self._block(keys=[self.block_key], args=[max(float(seconds), 0.0)])
