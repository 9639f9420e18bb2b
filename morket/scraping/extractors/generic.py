"""Generic page: title, meta tags, visible text and links.

Every URL it returns (links, and meta tags that hold one: ``og:image``, ``twitter:url`` ...) is
an absolute http(s) URL resolved against the page; anything else (``javascript:``, ``data:``)
is left out, so a consumer can put any of them in an ``href`` or ``src`` as it is.
"""

from __future__ import annotations

import re
from typing import Any

from morket.scraping.extractors import Extractor
from morket.scraping.extractors.normalise import clean_text, page_url

MAX_TEXT = 20000
# Meta tags whose content is a URL: og:image, og:image:secure_url, twitter:image:src, og:url,
# msapplication-TileImage, itemprop="image" ...
_URL_META = re.compile(r"(?:^|[:_-])(?:image|tileimage|thumbnail|url|secure_url|src|video|audio)$")
_SCRIPT_VALUE = re.compile(r"^\s*(?:javascript|vbscript|data)\s*:", re.I)


def _meta_value(key: str, value: Any, page: str) -> str | None:
    if _URL_META.search(key.lower()):
        return page_url(value, page)
    text = clean_text(value, 1000)
    return None if _SCRIPT_VALUE.match(text) else text


def extract(snapshot: dict[str, Any]) -> dict[str, Any]:
    """Read any page."""
    page = snapshot.get("url") or ""
    metas: dict[str, str] = {}
    for key, value in snapshot.get("metas") or []:
        key = clean_text(key, 100)
        value = _meta_value(key, value, page)
        if value:
            metas.setdefault(key, value)
    links = []
    seen = set()
    for link in snapshot.get("links") or []:
        url = page_url(link.get("href"), page)
        if url and url not in seen:
            seen.add(url)
            links.append({"url": url, "text": clean_text(link.get("text"), 200)})
        if len(links) >= 300:
            break
    return {
        "title": clean_text(snapshot.get("title"), 500),
        "meta": dict(list(metas.items())[:100]),
        "headings": [clean_text(h, 300) for h in snapshot.get("headings") or []],
        "text": clean_text(snapshot.get("text"), MAX_TEXT),
        "links": links,
    }


EXTRACTOR = Extractor(
    name="generic",
    label="Any page",
    fields=("title", "meta", "headings", "text", "links"),
    extract=extract,
    description="Title, meta tags, visible text and links of any page.",
)
