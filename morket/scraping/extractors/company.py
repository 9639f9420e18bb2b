"""Company website: name, description, logo, social profiles, contact details, address, careers, technologies."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlsplit

from morket.scraping.extractors import Extractor
from morket.scraping.extractors._common import (
    clean_url,
    emails,
    has_type,
    jsonld_nodes,
    meta,
    phones,
    same_site,
    socials,
)
from morket.scraping.extractors.normalise import clean_text
from morket.scraping.extractors.technologies import detect

_CAREERS = re.compile(r"\b(careers?|jobs|join us|we.re hiring|work with us|open positions)\b", re.I)
_TITLE_SPLIT = re.compile(r"\s+[|\-–—:·]\s+")
_ORG_TYPES = ("Organization", "Corporation", "LocalBusiness", "Company", "NGO", "OnlineBusiness")


def _organization(snapshot: dict[str, Any]) -> dict[str, Any]:
    for node in jsonld_nodes(snapshot):
        if has_type(node, *_ORG_TYPES):
            return node
    return {}


def _address(org: dict[str, Any], snapshot: dict[str, Any]) -> str:
    address = org.get("address")
    if isinstance(address, list):
        address = address[0] if address else None
    if isinstance(address, dict):
        parts = [
            address.get(k)
            for k in ("streetAddress", "addressLocality", "addressRegion", "postalCode", "addressCountry")
        ]
        country = parts[-1]
        if isinstance(country, dict):
            parts[-1] = country.get("name")
        return clean_text(", ".join(str(p) for p in parts if p), 500)
    if isinstance(address, str):
        return clean_text(address, 500)
    found = snapshot.get("addresses") or []
    return clean_text(found[0], 500) if found else ""


def _name(org: dict[str, Any], snapshot: dict[str, Any]) -> str:
    name = clean_text(org.get("name"), 200) if isinstance(org.get("name"), str) else ""
    if not name:
        name = meta(snapshot, "og:site_name", "application-name")
    if not name:
        title = clean_text(snapshot.get("title"), 300)
        pieces = [p for p in _TITLE_SPLIT.split(title) if p] or [title]
        name = next((p for p in pieces if _matches_host(p, snapshot.get("url") or "")), pieces[0])
    return name[:200]


def _matches_host(piece: str, url: str) -> bool:
    """Whether a title piece spells the site's own name (``Acme Corp`` on ``acme-corp.com``)."""
    label = re.sub(r"[^a-z0-9]", "", (urlsplit(url).hostname or "").removeprefix("www.").split(".")[0])
    spelled = re.sub(r"[^a-z0-9]", "", piece.lower())
    return bool(label and spelled) and (label in spelled or spelled in label)


def _logo(org: dict[str, Any], snapshot: dict[str, Any]) -> str:
    logo = org.get("logo")
    if isinstance(logo, dict):
        logo = logo.get("url")
    for candidate in (
        logo,
        *(snapshot.get("images") or []),
        meta(snapshot, "og:image"),
        *(snapshot.get("icons") or []),
    ):
        url = clean_url(candidate)
        if url:
            return url
    return ""


def _careers(snapshot: dict[str, Any]) -> str:
    page = snapshot.get("url") or ""
    for link in snapshot.get("links") or []:
        href = link["href"]
        if _CAREERS.search(link.get("text") or "") or re.search(r"/(careers?|jobs)(/|$)", href, re.I):
            url = clean_url(href)
            if url and (
                same_site(url, page)
                or any(b in url for b in ("greenhouse.io", "lever.co", "workable.com", "ashbyhq.com"))
            ):
                return url
    return ""


def extract(snapshot: dict[str, Any]) -> dict[str, Any]:
    """Read a company's home page."""
    org = _organization(snapshot)
    description = clean_text(org.get("description"), 1000) if isinstance(org.get("description"), str) else ""
    description = description or meta(snapshot, "description", "og:description", "twitter:description")
    return {
        "name": _name(org, snapshot),
        "description": description[:1000],
        "logo": _logo(org, snapshot),
        "emails": emails(snapshot),
        "phones": phones(snapshot),
        "socials": socials(snapshot),
        "address": _address(org, snapshot),
        "careers_url": _careers(snapshot),
        "technologies": detect(snapshot),
        "website": clean_url(snapshot.get("url")),
    }


EXTRACTOR = Extractor(
    name="company",
    label="Company website",
    fields=(
        "name",
        "description",
        "logo",
        "emails",
        "phones",
        "socials",
        "address",
        "careers_url",
        "technologies",
        "website",
    ),
    extract=extract,
    description="A company's home page: who they are, how to reach them, what they run on.",
)
