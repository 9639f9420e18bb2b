"""Generic page: title, meta tags, visible text and links."""

from __future__ import annotations

from typing import Any

from morket.scraping.extractors import Extractor
from morket.scraping.extractors.normalise import clean_text, normalise_url

MAX_TEXT = 20000


def extract(snapshot: dict[str, Any]) -> dict[str, Any]:
    """Read any page."""
    metas: dict[str, str] = {}
    for key, value in snapshot.get("metas") or []:
        metas.setdefault(clean_text(key, 100), clean_text(value, 1000))
    links = []
    seen = set()
    for link in snapshot.get("links") or []:
        url = normalise_url(link["href"])
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
