"""Rate-limit keys and the named limits, defined once."""

from __future__ import annotations

import time
from typing import cast

from flask import g, has_request_context, request
from limits import RateLimitItem
from limits.errors import StorageError
from limits.storage import RedisStorage
from limits.strategies import MovingWindowRateLimiter
from limits.util import WindowStats

AUTH_LIMIT = "5/minute"
ADMIN_LIMIT = "10/minute"
GENERAL_LIMIT = "100/minute"
GRID_LIMIT = "1200/minute"
METRICS_LIMIT = "60/minute"


def client_ip() -> str:
    """Return the caller's address (the proxy in front sets REMOTE_ADDR via ProxyFix)."""
    return request.remote_addr or "unknown"


def rate_limit_key() -> str:
    """Key limits by the authenticated principal when there is one, else by IP."""
    principal = getattr(g, "rate_limit_principal", None)
    if principal:
        return principal
    from flask_login import current_user

    if current_user and current_user.is_authenticated:
        return f"user:{current_user.id}"
    return f"ip:{client_ip()}"


def clear_rate_limits(principal: str | None = None) -> int:
    """Delete the rate-limit counters of ``principal`` (``rate_limit_key``'s ``user:5``), or of
    everyone; return how many there were. Needs an app context.

    The counters are read from the storage the app's limiter was bound to (``extensions``), which
    is where they live. limits' Redis storage prefixes every key
    (``LIMITS:LIMITER/<app prefix>/<principal>/...``), so the app's prefix is matched anywhere in
    the key, not at its start.
    """
    from flask import current_app

    storage = current_app.extensions["morket_limiter"][0]
    conn = storage.get_connection()
    prefix = current_app.config["RATELIMIT_KEY_PREFIX"]
    keys = list(conn.scan_iter(f"*/{prefix}/{principal}/*" if principal else f"*/{prefix}/*"))
    if keys:
        conn.delete(*keys)
    return len(keys)


# --- the rate-limit headers from the hit itself ----------------------------------------------------
#
# With headers enabled, flask-limiter hits the limit before the view and reads the moving window
# again after it for X-RateLimit-Remaining / -Reset: two Redis round trips per request. This script
# is limits' own acquire script followed by its own window read, run atomically: the hit's result
# and the window as it stands right after the hit come back together, and the headers are built
# from them. Outside a request (no place to keep them) the window is read as before.
_ACQUIRE_AND_READ_WINDOW = """
local timestamp = tonumber(ARGV[1])
local limit = tonumber(ARGV[2])
local expiry = tonumber(ARGV[3])
local amount = tonumber(ARGV[4])
local acquired = 0
if amount <= limit then
    local entry = redis.call('lindex', KEYS[1], limit - amount)
    if not (entry and tonumber(entry) >= timestamp - expiry) then
        local entries = {}
        for i = 1, amount do
            entries[i] = timestamp
        end
        for i = 1, #entries, 5000 do
            redis.call('lpush', KEYS[1], unpack(entries, i, math.min(i + 4999, #entries)))
        end
        redis.call('ltrim', KEYS[1], 0, limit - 1)
        redis.call('expire', KEYS[1], expiry)
        acquired = 1
    end
end
local target = timestamp - expiry
local low, high, found = 0, limit - 1, nil
while low <= high do
    local mid = math.floor((low + high) / 2)
    local value = tonumber(redis.call('lindex', KEYS[1], mid))
    if value and value >= target then
        found = mid
        low = mid + 1
    else
        high = mid - 1
    end
end
if found then
    return {acquired, redis.call('lindex', KEYS[1], found), found + 1}
end
return {acquired, false, 0}
"""
_WINDOWS = "morket_rate_windows"


class MovingWindowFromHit(MovingWindowRateLimiter):
    """The moving-window strategy on Redis, whose ``hit`` also returns the window for the headers.

    ``get_window_stats`` answers from the request's own hit when there was one for that key (the
    same figures a separate read just after the hit gives), else reads Redis as limits does.
    """

    def __init__(self, storage: RedisStorage) -> None:
        super().__init__(storage)
        self._script = storage.get_connection().register_script(_ACQUIRE_AND_READ_WINDOW)

    def hit(self, item: RateLimitItem, *identifiers: str, cost: int = 1) -> bool:
        storage = cast(RedisStorage, self.storage)
        key = item.key_for(*identifiers)
        expiry = item.get_expiry()
        now = time.time()
        try:
            acquired, oldest, count = self._script([storage.prefixed_key(key)], [now, item.amount, expiry, cost])
        except storage.base_exceptions as exc:
            if storage.wrap_exceptions:
                raise StorageError(exc) from exc
            raise
        if has_request_context():
            start = float(oldest) if count else now
            g.setdefault(_WINDOWS, {})[key] = WindowStats(start + expiry, item.amount - int(count))
        return bool(acquired)

    def get_window_stats(self, item: RateLimitItem, *identifiers: str) -> WindowStats:
        if has_request_context():
            found = g.get(_WINDOWS, {}).get(item.key_for(*identifiers))
            if found is not None:
                return found
        return super().get_window_stats(item, *identifiers)
