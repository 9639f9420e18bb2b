"""Being a good guest: per-domain rate limits and breakers, robots.txt, proxies, browser fingerprints.

Limits and breakers live in Redis (``morket.core.throttle``) so every scrape worker shares them,
keyed by the registrable domain (``morket.core.domains``). robots.txt is fetched once per origin
per hour (RFC 9309: a 4xx means no rules, a 5xx or an unreachable server means "do not crawl"
for now), over a connection to the address the SSRF check approved, never to a fresh DNS
answer, and read by Protego: the longest matching rule wins (``Allow: /private/public`` after
``Disallow: /private``), ``*`` and ``$`` patterns work, and ``Crawl-delay`` / ``Request-rate``
slow the domain's limit down (up to ``MAX_CRAWL_DELAY``). Fingerprints are drawn per browser
context, so a reused page keeps one coherent identity.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from urllib.parse import urlsplit

import httpx
from protego import Protego
from redis import Redis

from morket.core.throttle import CircuitBreaker, TokenBucket
from morket.core.urlsafety import Resolver, UnsafeUrl, check_url, host_port

ROBOTS_TTL = 3600
ROBOTS_MAX_BYTES = 512 * 1024
ROBOTS_AGENT = "MorketBot"
PROXY_BAD_SECONDS = 60
BURST = 2.0
# A site may ask for at most this many seconds between pages: a larger Crawl-delay would hold a
# worker (and every page queued behind it for the domain) longer than a page's own deadline.
MAX_CRAWL_DELAY = 10.0
_DENY = "\x00deny"  # the cached marker for "robots.txt could not be read: do not crawl for now"


@dataclass(frozen=True)
class Fingerprint:
    """A coherent browser identity: user agent, screen, language and clock."""

    user_agent: str
    width: int
    height: int
    locale: str
    timezone: str


_CHROME = "AppleWebKit/537.36 (KHTML, like Gecko) Chrome/{} Safari/537.36"
_AGENTS = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) " + _CHROME.format("141.0.0.0"),
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) " + _CHROME.format("140.0.0.0"),
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) " + _CHROME.format("141.0.0.0"),
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) " + _CHROME.format("139.0.0.0"),
    "Mozilla/5.0 (X11; Linux x86_64) " + _CHROME.format("141.0.0.0"),
)
_SCREENS = ((1920, 1080), (1536, 864), (1440, 900), (1366, 768), (1280, 800))
# Locale and a time zone where people speaking it live: a German locale on a Tokyo clock stands out.
_PLACES = (
    ("en-US", "America/New_York"),
    ("en-US", "America/Chicago"),
    ("en-US", "America/Los_Angeles"),
    ("en-GB", "Europe/London"),
    ("de-DE", "Europe/Berlin"),
    ("fr-FR", "Europe/Paris"),
)


def pick_fingerprint(rng: random.Random | None = None) -> Fingerprint:
    """Draw one identity from the curated sets."""
    rng = rng or random.SystemRandom()
    width, height = rng.choice(_SCREENS)
    locale, zone = rng.choice(_PLACES)
    return Fingerprint(rng.choice(_AGENTS), width, height, locale, zone)


class ProxyPicker:
    """Rotate through the configured proxies, skipping ones that failed recently (state in Redis)."""

    def __init__(self, redis: Redis, proxies: tuple[str, ...]) -> None:
        self.redis = redis
        self.proxies = proxies

    def pick(self) -> str | None:
        """Return the next healthy proxy, or None when none is configured (direct connections)."""
        if not self.proxies:
            return None
        start = int(self.redis.incr("morket:scrape:proxy:turn"))
        for i in range(len(self.proxies)):
            proxy = self.proxies[(start + i) % len(self.proxies)]
            if not self.redis.exists(self._bad_key(proxy)):
                return proxy
        return self.proxies[start % len(self.proxies)]  # all marked bad: try anyway rather than stop

    def mark_bad(self, proxy: str) -> None:
        """Take ``proxy`` out of rotation for a minute."""
        self.redis.set(self._bad_key(proxy), "1", ex=PROXY_BAD_SECONDS)

    def health_check(self, timeout: float = 3.0) -> dict[str, bool]:
        """Open a TCP connection to each proxy; mark the ones that do not answer."""
        import socket

        health: dict[str, bool] = {}
        for proxy in self.proxies:
            parts = urlsplit(proxy if "://" in proxy else f"http://{proxy}")
            try:
                with socket.create_connection((parts.hostname or "", parts.port or 8080), timeout=timeout):
                    health[proxy] = True
            except OSError:
                health[proxy] = False
                self.mark_bad(proxy)
        return health

    @staticmethod
    def _bad_key(proxy: str) -> str:
        return f"morket:scrape:proxy:bad:{proxy}"


class DomainGate:
    """The per-domain token bucket and circuit breaker shared by every worker."""

    def __init__(self, redis: Redis, domain: str, rate: float, crawl_delay: float | None = None) -> None:
        self.domain = domain
        # A site sees evenly spaced requests, never ``rate`` at once: the bucket holds at most
        # two tokens, enough for a worker to catch up after one slow page without a burst.
        burst = BURST
        if crawl_delay:
            # The site asked for this many seconds between pages: never faster, and no catching up.
            rate, burst = min(rate, 1.0 / crawl_delay), 1.0
        self.bucket = TokenBucket(redis, f"scrape:{domain}", rate, burst=burst)
        self.breaker = CircuitBreaker(redis, f"scrape:{domain}", fail_max=5, reset_timeout=60)

    def wait_turn(self, timeout: float) -> bool:
        """Wait for this domain's next slot; False when it did not come within ``timeout``."""
        return self.bucket.acquire(timeout)

    def allow(self) -> bool:
        return self.breaker.allow()

    def record(self, ok: bool) -> None:
        if ok:
            self.breaker.record_success()
        else:
            self.breaker.record_failure()


class RobotsRules:
    """One origin's robots.txt as Protego reads it; a file that could not be read allows nothing."""

    def __init__(self, body: str) -> None:
        self._parser = None if body == _DENY else Protego.parse(body)

    def allows(self, url: str, agent: str = ROBOTS_AGENT) -> bool:
        """Whether ``agent`` may fetch ``url``."""
        return self._parser is not None and self._parser.can_fetch(url, agent)

    def crawl_delay(self, agent: str = ROBOTS_AGENT) -> float | None:
        """Seconds the site asks between pages (Crawl-delay or Request-rate), at most MAX_CRAWL_DELAY."""
        if self._parser is None:
            return None
        delays = [self._parser.crawl_delay(agent) or 0.0]
        rate = self._parser.request_rate(agent)
        if rate is not None and rate.requests > 0:
            delays.append(rate.seconds / rate.requests)
        delay = max(delays)
        return min(float(delay), MAX_CRAWL_DELAY) if delay > 0 else None


class Robots:
    """robots.txt rules per origin, cached in Redis and fetched through the SSRF check."""

    def __init__(
        self, redis: Redis, *, allowlist: tuple[str, ...], resolver: Resolver | None, timeout: float = 5.0
    ) -> None:
        self.redis = redis
        self.allowlist = allowlist
        self.resolver = resolver
        self.timeout = timeout

    def rules(self, url: str) -> RobotsRules:
        """The robots.txt rules of ``url``'s origin (downloaded at most once an hour)."""
        scheme, host, port = host_port(url)
        origin = f"{scheme}://{host}:{port}"
        key = f"morket:scrape:robots:{origin}"
        cached = self.redis.get(key)
        if cached is None:
            text = self._download(origin)
            cached = text.encode()
            self.redis.set(key, cached, ex=ROBOTS_TTL)
        return RobotsRules(cached.decode("utf-8", "replace"))

    def _download(self, origin: str) -> str:
        url = f"{origin}/robots.txt"
        for _hop in range(4):
            try:
                addresses = check_url(url, allowlist=self.allowlist, resolver=self.resolver)
            except UnsafeUrl:
                return ""  # a robots.txt that redirects inside the network gives no rules
            response = self._get(url, addresses)
            if response is None:
                return _DENY
            if response.status_code in (301, 302, 303, 307, 308) and "location" in response.headers:
                url = str(httpx.URL(url).join(response.headers["location"]))
                continue
            if response.status_code >= 500:
                return _DENY
            if response.status_code >= 400:
                return ""
            return response.content[:ROBOTS_MAX_BYTES].decode("utf-8", "replace")
        return ""

    def _get(self, url: str, addresses: list) -> httpx.Response | None:
        """GET ``url`` from the first approved address, sending the real Host (and SNI for https)."""
        return pinned_get(url, addresses, ROBOTS_AGENT, self.timeout, ROBOTS_MAX_BYTES)


def pinned_get(url: str, addresses: list, agent: str, timeout: float, max_bytes: int) -> httpx.Response | None:
    """GET ``url`` from the first approved address that answers (None: none did), body cut at ``max_bytes``.

    The connection goes to an address ``check_url`` approved, never to a fresh DNS answer; the real
    Host header (and SNI for https) is sent. Redirects are not followed: the caller checks the next hop.
    """
    parsed = httpx.URL(url)
    targets = [str(a) for a in addresses] or [parsed.host]
    for address in targets:
        host = f"[{address}]" if ":" in address else address
        try:
            with _client().stream(
                "GET",
                parsed.copy_with(host=host.strip("[]")),
                # One connection a request: the next request may be pinned to another address.
                headers={"Host": parsed.netloc.decode(), "User-Agent": agent, "Connection": "close"},
                extensions={"sni_hostname": parsed.host, "timeout": httpx.Timeout(timeout).as_dict()},
            ) as response:
                body = b""
                for chunk in response.iter_bytes():
                    body += chunk
                    if len(body) >= max_bytes:
                        break
                response._content = body[:max_bytes]  # keep what was read, capped
                return response
        except httpx.HTTPError:
            continue
    return None


_CLIENT: httpx.Client | None = None


def _client() -> httpx.Client:
    """One client per process: building a TLS context costs about 0.1 s, so it is built once."""
    global _CLIENT
    if _CLIENT is None:
        _CLIENT = httpx.Client(timeout=5.0, follow_redirects=False, trust_env=False)
    return _CLIENT
