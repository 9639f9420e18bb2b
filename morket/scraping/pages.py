"""Reading a page's text for the research agent, under the same rules as every scrape.

``read_page(url, settings, redis)`` never raises for a page problem: it answers a ``PageText``
whose ``refused`` or ``error`` says why there is no text. What applies, as for the browser:

- the SSRF guard (``RequestGuard`` with ``SCRAPE_ALLOWLIST`` and ``SCRAPE_HOST_RESOLVER_RULES``)
  on the URL and on every redirect hop, and the connection goes to the address the guard
  approved (``politeness.pinned_get``), so a name cannot resolve to a public address for the check
  and a private one for the request;
- robots.txt (``SCRAPE_RESPECT_ROBOTS``), the per-domain token bucket and breaker
  (``SCRAPE_DOMAIN_RATE``), shared with the scrape workers through Redis;
- a byte cap (``RESEARCH_PAGE_MAX_BYTES``) and a timeout.

No JavaScript runs: the agent reads what the server sends (HTML as text, scripts and styles
dropped, or plain text). The text is data for a model: it is never shown as HTML.
"""

from __future__ import annotations

import contextlib
import re
from dataclasses import dataclass
from html.parser import HTMLParser
from typing import Any

import httpx
from redis import Redis

from morket.core.domains import registrable_domain
from morket.core.urlsafety import UnsafeUrl, check_url
from morket.scraping.netguard import RequestGuard
from morket.scraping.politeness import DomainGate, Robots, pinned_get

AGENT = "MorketBot"
MAX_REDIRECTS = 4
DEFAULT_MAX_BYTES = 1024 * 1024
_SKIP = frozenset({"script", "style", "noscript", "template", "svg", "head"})
_BLOCK = frozenset(
    {"p", "div", "br", "li", "ul", "ol", "h1", "h2", "h3", "h4", "h5", "h6", "tr", "td", "th", "section",
     "article", "header", "footer", "address", "blockquote", "pre", "table", "main", "nav", "title"}
)  # fmt: skip
_SPACES = re.compile(r"[ \t\r\f\v]+")
_LINES = re.compile(r"\n\s*\n+")


@dataclass
class PageText:
    url: str
    final_url: str | None = None
    status: int | None = None
    title: str = ""
    text: str = ""
    refused: str | None = None  # the guard or robots.txt said no
    error: str | None = None  # the page could not be read

    @property
    def ok(self) -> bool:
        return self.refused is None and self.error is None


class _Text(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.title: list[str] = []
        self.skip = 0
        self.in_title = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "title":
            self.in_title = True
        elif tag in _SKIP:
            self.skip += 1
        if tag in _BLOCK:
            self.parts.append("\n")

    def handle_endtag(self, tag: str) -> None:
        if tag == "title":
            self.in_title = False
        elif tag in _SKIP and self.skip:
            self.skip -= 1
        if tag in _BLOCK:
            self.parts.append("\n")

    def handle_data(self, data: str) -> None:
        if self.in_title:
            self.title.append(data)
        elif not self.skip:
            self.parts.append(data)


def html_text(html: str) -> tuple[str, str]:
    """(title, text) of an HTML document: visible text, one line per block, spaces collapsed."""
    parser = _Text()
    with contextlib.suppress(Exception):  # html.parser is lenient; whatever it chokes on leaves what it read
        parser.feed(html)
        parser.close()
    text = _SPACES.sub(" ", "".join(parser.parts))
    text = "\n".join(line.strip() for line in text.split("\n"))
    return _SPACES.sub(" ", "".join(parser.title)).strip(), _LINES.sub("\n", text).strip()


def read_page(url: str, settings: dict[str, Any], redis: Redis, *, timeout: float = 10.0) -> PageText:
    """The text of ``url`` (following up to four redirects, each checked), or why there is none."""
    guard = RequestGuard.from_settings(
        tuple(settings.get("SCRAPE_ALLOWLIST") or ()), settings.get("SCRAPE_HOST_RESOLVER_RULES") or ""
    )
    max_bytes = int(settings.get("RESEARCH_PAGE_MAX_BYTES") or DEFAULT_MAX_BYTES)
    robots = Robots(redis, allowlist=tuple(settings.get("SCRAPE_ALLOWLIST") or ()), resolver=guard.rules.resolve)
    respect = bool(settings.get("SCRAPE_RESPECT_ROBOTS", True))
    rate = float(settings.get("SCRAPE_DOMAIN_RATE") or 1.0)
    page = PageText(url)
    current = url
    for _hop in range(MAX_REDIRECTS + 1):
        try:
            addresses = check_url(current, allowlist=guard.allowlist, resolver=guard.rules.resolve)
        except UnsafeUrl as exc:
            page.refused = exc.message
            return page
        rules = robots.rules(current) if respect else None
        if rules is not None and not rules.allows(current, AGENT):
            page.refused = "The site's robots.txt does not allow reading this page."
            return page
        gate = DomainGate(redis, registrable_domain(current) or current, rate, rules.crawl_delay() if rules else None)
        if not gate.allow():
            page.error = "The site failed repeatedly; Morket pauses reading it for a minute."
            return page
        if not gate.wait_turn(timeout):
            page.error = "The site's rate limit left no slot in time."
            return page
        response = pinned_get(current, addresses, AGENT, timeout, max_bytes)
        if response is None:
            gate.record(False)
            page.error = "The site could not be reached."
            return page
        gate.record(response.status_code < 500)
        if response.status_code in (301, 302, 303, 307, 308) and "location" in response.headers:
            current = str(httpx.URL(current).join(response.headers["location"]))
            continue
        page.final_url, page.status = current, response.status_code
        if response.status_code >= 400:
            page.error = f"The site answered {response.status_code}."
            return page
        kind = response.headers.get("content-type", "text/html").split(";")[0].strip().lower()
        body = response.content.decode(response.encoding or "utf-8", "replace")
        if kind in ("text/html", "application/xhtml+xml"):
            page.title, page.text = html_text(body)
        elif kind.startswith("text/"):
            page.text = body.strip()
        else:
            page.error = f"Not a page of text ({kind})."
        return page
    page.error = "Too many redirects."
    return page
