"""Clearing the rate-limit counters between examples of a property test (one app context needed)."""

from __future__ import annotations

# limits' Redis storage prefixes every key ("LIMITS:LIMITER/morket-rl/<principal>/..."), so the
# app's own prefix is matched anywhere in the key, not at its start.
PATTERN = "*/morket-rl/*"


def clear_rate_limits() -> int:
    """Delete every rate-limit counter of the app's Redis; return how many were there."""
    from morket.core.jobs import redis_connection

    conn = redis_connection()
    keys = list(conn.scan_iter(PATTERN))
    if keys:
        conn.delete(*keys)
    return len(keys)
