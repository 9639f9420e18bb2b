"""Read one URL politely and safely: SSRF check, robots.txt, the domain's breaker and rate, retries.

This is the part a scrape job, the website enrichment provider and the benchmark share; it
knows nothing of the database. Each attempt waits for the domain's token (shared by every
worker through Redis), so retries count against the site's limit like any other page.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any

from redis import Redis

from morket.core.domains import registrable_domain
from morket.core.urlsafety import UnsafeUrl
from morket.scraping.browser import FetchError, PageResult, PoolSettings, get_pool
from morket.scraping.extractors import get_extractor
from morket.scraping.extractors.normalise import normalise_url
from morket.scraping.politeness import DomainGate, ProxyPicker, Robots

RETRY_DELAYS = (0.5, 2.0)


@dataclass
class ScrapeOutcome:
    """The result of reading one URL: the extracted fields, or an error kind and message."""

    url: str
    ok: bool
    data: dict[str, Any] = field(default_factory=dict)
    final_url: str | None = None
    http_status: int | None = None
    error_kind: str | None = None
    message: str | None = None
    attempts: int = 0
    elapsed_ms: int = 0
    waited_ms: int = 0  # time spent waiting for the domain's rate limit
    screenshot: bytes | None = None
    blocked: list[str] = field(default_factory=list)


def normalise_target(value: str) -> str:
    """Turn what a user typed (a domain or a URL) into the URL to read, or raise UnsafeUrl."""
    value = (value or "").strip()
    if not value:
        raise UnsafeUrl("Give a URL or a domain to read.")
    if "://" in value and not value.lower().startswith(("http://", "https://")):
        raise UnsafeUrl("Only http and https URLs can be fetched.")
    url = normalise_url(value)
    if url is None:
        raise UnsafeUrl("The URL is not valid.")
    return url


class Scraper:
    """Reads pages with this process's browser pool under the configured limits."""

    def __init__(self, settings: dict[str, Any], redis: Redis) -> None:
        self.settings = settings
        self.redis = redis
        pool_settings = PoolSettings.from_config(settings)
        proxies = ProxyPicker(redis, pool_settings.proxies) if pool_settings.proxies else None
        self.pool = get_pool(pool_settings, proxies)
        self.rate = float(settings.get("SCRAPE_DOMAIN_RATE") or 1.0)
        self.respect_robots = bool(settings.get("SCRAPE_RESPECT_ROBOTS", True))
        self.robots = Robots(
            redis, allowlist=pool_settings.allowlist, resolver=self.pool.guard.rules.resolve, timeout=5.0
        )

    def scrape(self, target: str, extractor_name: str, *, screenshot: bool = False) -> ScrapeOutcome:
        """Read ``target`` with the named extractor; never raises for a page problem."""
        extractor = get_extractor(extractor_name)
        started = time.monotonic()
        try:
            url = normalise_target(target)
            self.pool.guard.check(url)
        except UnsafeUrl as exc:
            return ScrapeOutcome(target, False, error_kind="blocked", message=exc.message)
        outcome = ScrapeOutcome(url, False)
        rules = self.robots.rules(url) if self.respect_robots else None
        if rules is not None and not rules.allows(url):
            outcome.error_kind, outcome.message = "robots", "The site's robots.txt does not allow reading this page."
            return outcome
        crawl_delay = rules.crawl_delay() if rules is not None else None
        gate = DomainGate(self.redis, registrable_domain(url) or url, self.rate, crawl_delay)
        timeout = float(self.settings.get("SCRAPE_PAGE_TIMEOUT") or 20)
        for attempt in range(len(RETRY_DELAYS) + 1):
            outcome.attempts = attempt + 1
            if not gate.allow():
                outcome.error_kind = "circuit_open"
                outcome.message = "The site failed repeatedly; Morket pauses reading it for a minute."
                break
            waiting = time.monotonic()
            got_turn = gate.wait_turn(timeout=max(timeout, 30.0))
            outcome.waited_ms += int((time.monotonic() - waiting) * 1000)
            if not got_turn:
                outcome.error_kind, outcome.message = "rate_limited", "The site's rate limit left no slot in time."
                break
            try:
                page = self.pool.fetch(url, screenshot=screenshot)
            except FetchError as exc:
                outcome.error_kind, outcome.message = exc.kind, exc.message
                transient = exc.transient
            else:
                transient = self._read(page, extractor, outcome)
            if outcome.ok:
                gate.record(True)
                break
            if outcome.error_kind in ("blocked", "too_large"):
                break
            gate.record(not transient)
            if not transient or attempt == len(RETRY_DELAYS):
                break
            time.sleep(RETRY_DELAYS[attempt])
        outcome.elapsed_ms = int((time.monotonic() - started) * 1000)
        return outcome

    @staticmethod
    def _read(page: PageResult, extractor: Any, outcome: ScrapeOutcome) -> bool:
        """Fill ``outcome`` from a loaded page; return whether a failure is worth retrying."""
        outcome.final_url, outcome.http_status = page.final_url, page.status
        outcome.blocked = page.blocked
        outcome.screenshot = page.screenshot
        if page.status >= 400:
            try:
                phrase = HTTPStatus(page.status).phrase
            except ValueError:
                phrase = "error"
            outcome.error_kind = "http"
            outcome.message = f"The site answered {page.status} {phrase}."
            return page.status >= 500 or page.status == 429
        outcome.data = extractor.extract(page.snapshot)
        outcome.ok = True
        return False
