"""Helpers several extractors share: meta lookups, JSON-LD walking, contact details."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from morket.core.domains import registrable_domain
from morket.scraping.extractors.normalise import (
    EMAIL_RE,
    clean_text,
    normalise_email,
    normalise_phone,
    page_url,
    region_for,
    social_profile,
)


def meta(snapshot: dict[str, Any], *keys: str) -> str:
    """The first non-empty meta tag among ``keys`` (name or property), as clean text."""
    found = dict(reversed(snapshot.get("metas") or []))
    for key in keys:
        if found.get(key):
            return clean_text(found[key])
    return ""


def jsonld_nodes(snapshot: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Every JSON-LD object of the page, including those inside @graph and lists."""
    stack: list[Any] = list(snapshot.get("jsonld") or [])
    seen = 0
    while stack and seen < 500:
        node = stack.pop(0)
        seen += 1
        if isinstance(node, list):
            stack.extend(node)
        elif isinstance(node, dict):
            yield node
            if isinstance(node.get("@graph"), list):
                stack.extend(node["@graph"])


def has_type(node: dict[str, Any], *types: str) -> bool:
    kind = node.get("@type")
    kinds = kind if isinstance(kind, list) else [kind]
    return any(k in types for k in kinds if isinstance(k, str))


def emails(snapshot: dict[str, Any]) -> list[str]:
    """Contact emails from mailto links and the page text, de-duplicated in page order."""
    found: list[str] = []
    for link in snapshot.get("links") or []:
        if link["href"].lower().startswith("mailto:"):
            found.append(link["href"])
    found.extend(EMAIL_RE.findall(snapshot.get("text") or ""))
    for node in jsonld_nodes(snapshot):
        if isinstance(node.get("email"), str):
            found.append(node["email"])
    return _unique(normalise_email(e) for e in found)[:20]


def phones(snapshot: dict[str, Any]) -> list[str]:
    """Phone numbers from tel: links and JSON-LD, in E.164."""
    region = region_for(snapshot.get("lang") or "")
    raw = list(snapshot.get("tel") or [])
    for node in jsonld_nodes(snapshot):
        if isinstance(node.get("telephone"), str):
            raw.append(node["telephone"])
    return _unique(normalise_phone(p, region) for p in raw)[:10]


def socials(snapshot: dict[str, Any]) -> dict[str, str]:
    """One canonical profile URL per network (the first the page links to)."""
    found: dict[str, str] = {}
    candidates = [link["href"] for link in snapshot.get("links") or []]
    for node in jsonld_nodes(snapshot):
        same = node.get("sameAs")
        candidates.extend(same if isinstance(same, list) else [same] if isinstance(same, str) else [])
    for href in candidates:
        url = clean_url(href, snapshot.get("url") or "")
        profile = social_profile(url) if url else None
        if profile is not None and profile[0] not in found:
            found[profile[0]] = profile[2]
    return found


def same_site(url: str, other: str) -> bool:
    """Whether two URLs belong to one registrable domain (``jobs.acme.com`` and ``www.acme.com``)."""
    domain = registrable_domain(url)
    return domain is not None and domain == registrable_domain(other)


def clean_url(value: Any, page: str) -> str:
    """A URL found on ``page`` as an absolute http(s) URL, or "" (``javascript:``, ``data:`` ...)."""
    return page_url(value, page) or ""


def _unique(values: Any) -> list[str]:
    return list(dict.fromkeys(v for v in values if v))
