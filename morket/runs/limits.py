"""What the pool threads of one batch share: the HTTP client, limiters, breakers and stop flags.

Throttling rests on Redis (``morket.core.throttle``): one token bucket per provider and key, and
one circuit breaker per provider, shared by every worker. If Redis cannot be reached the job
releases its rows and pauses the run; the reconciler resumes it when Redis answers again,
because limiting from a local guess would break the provider's limit as soon as two workers run.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx
import sqlalchemy as sa
from redis import Redis

from morket.core.throttle import CircuitBreaker, TokenBucket

BREAKER_FAIL_MAX = 5
# Timeout of one call through the batch's HTTP client.
CALL_TIMEOUT_SECONDS = 15.0
BREAKER_RESET_SECONDS = 30.0
BURST_SECONDS = 0.5
# Keep this much of a lease for writing the batch back.
LEASE_MARGIN_SECONDS = 5.0


@dataclass
class CallScope:
    """One batch's shared services; its methods are safe to call from the pool threads."""

    run_id: int
    owner: str
    client: httpx.Client
    redis: Redis
    engine: sa.Engine
    lease_deadline: float
    lease_margin: float = LEASE_MARGIN_SECONDS
    stop: threading.Event = field(default_factory=threading.Event)
    redis_down: threading.Event = field(default_factory=threading.Event)
    config: Mapping[str, Any] = field(default_factory=dict)
    buckets: dict[str, TokenBucket] = field(default_factory=dict)
    breakers: dict[str, CircuitBreaker] = field(default_factory=dict)

    def bucket(self, provider: str, limiter_id: str, rate: float) -> TokenBucket:
        """The token bucket of ``provider`` for one key (a workspace's own key has its own allowance)."""
        found = self.buckets.get(provider)
        if found is None:
            # Half a second of burst: enough to make up for moments when every job is writing its
            # batch (so the achieved rate stays at the limit), small enough to stay inside the
            # provider's own bucket while it is partly drained.
            burst = max(1.0, rate * BURST_SECONDS)
            key = f"{provider}:{limiter_id}"
            found = self.buckets[provider] = TokenBucket(self.redis, key, rate=rate, burst=burst)
        return found

    def breaker(self, provider: str) -> CircuitBreaker:
        """The circuit breaker every worker shares for ``provider``."""
        found = self.breakers.get(provider)
        if found is None:
            found = self.breakers[provider] = CircuitBreaker(
                self.redis,
                f"provider:{provider}",
                fail_max=int(self.config.get("ENRICHMENT_BREAKER_FAIL_MAX") or BREAKER_FAIL_MAX),
                reset_timeout=float(self.config.get("ENRICHMENT_BREAKER_RESET_SECONDS") or BREAKER_RESET_SECONDS),
            )
        return found
