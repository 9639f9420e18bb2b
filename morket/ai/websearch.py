"""The research agent's web search: the Brave Search API's contract (``/res/v1/web/search``).

``search(base_url, key, query)`` answers ``SearchResult``s (title, URL, snippet) or raises
``SearchError`` (``retryable`` and ``retry_after`` for a 429 or 5xx, a message safe to show). The
base URL is the operator's setting (``WEBSEARCH_URL``; the sandbox's ``/websearch`` in tests and
``make run``), never a user's, so it is not put through the SSRF guard; the pages the results
name are (``morket.scraping.pages``). No Flask here: pool threads call it.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

import httpx

PATH = "/res/v1/web/search"
MAX_RESULTS = 8
MAX_QUERY = 400
_client: httpx.Client | None = None
_lock = threading.Lock()


@dataclass(frozen=True)
class SearchResult:
    title: str
    url: str
    snippet: str


class SearchError(Exception):
    def __init__(self, message: str, *, retryable: bool = False, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.message, self.retryable, self.retry_after = message, retryable, retry_after


def _http() -> httpx.Client:
    global _client
    with _lock:
        if _client is None:
            _client = httpx.Client(timeout=10.0, follow_redirects=False, trust_env=False)
        return _client


def search(base_url: str, key: str, query: str, *, count: int = 5, timeout: float = 10.0) -> list[SearchResult]:
    """Ask the search API for ``query``'s first ``count`` web results."""
    query = " ".join(query.split())[:MAX_QUERY]
    if not query:
        return []
    try:
        response = _http().get(
            base_url.rstrip("/") + PATH,
            params={"q": query, "count": max(1, min(count, MAX_RESULTS))},
            headers={"X-Subscription-Token": key, "Accept": "application/json"},
            timeout=timeout,
        )
    except httpx.TimeoutException:
        raise SearchError("The web search did not answer in time", retryable=True) from None
    except httpx.HTTPError:
        raise SearchError("Could not reach the web search", retryable=True) from None
    if response.status_code == 429:
        raw = response.headers.get("retry-after", "")
        wait = float(raw) if raw.replace(".", "", 1).isdigit() else None
        raise SearchError("The web search is rate limiting", retryable=True, retry_after=wait)
    if response.status_code >= 500:
        raise SearchError(f"The web search failed ({response.status_code})", retryable=True)
    if response.status_code >= 400:
        raise SearchError(f"The web search refused the request ({response.status_code})")
    try:
        results = (response.json().get("web") or {}).get("results") or []
    except (ValueError, AttributeError):
        raise SearchError("The web search's answer was not JSON") from None
    found = []
    for item in results[:count]:
        if (
            isinstance(item, dict)
            and isinstance(item.get("url"), str)
            and item["url"].startswith(("http://", "https://"))
        ):
            found.append(SearchResult(str(item.get("title") or "")[:200], item["url"][:2000],
                                      str(item.get("description") or "")[:400]))  # fmt: skip
    return found
