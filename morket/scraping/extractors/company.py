"""Company website: name, description, logo, social profiles, contact details, address, careers, technologies."""

from __future__ import annotations

import functools
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
from morket.scraping.extractors.normalise import clean_text, clip_words, social_profile
from morket.scraping.extractors.technologies import detect

# "Join us on Facebook" and "join us at our booth" invite somewhere else, not to a job.
_CAREERS = re.compile(
    r"\b(careers?|jobs|join us(?!\s+(?:on|at|in|for)\b)|we.re hiring|work with us|open positions)\b", re.I
)
_JOB_BOARDS = ("greenhouse.io", "lever.co", "workable.com", "ashbyhq.com")
_TITLE_SPLIT = re.compile(r"\s+[|\-–—:·]\s+")
_ORG_TYPES = ("Organization", "Corporation", "LocalBusiness", "Company", "NGO", "OnlineBusiness")
# An image named after a network is that network's icon, never the company's logo.
_SOCIAL_ICON = re.compile(
    r"(?<![a-z])(facebook|fb|twitter|x-logo|linkedin|instagram|youtube|github|tiktok|pinterest|whatsapp|"
    r"xing|vimeo|discord|telegram|snapchat|reddit|mastodon|app-?store|google-?play)(?![a-z])",
    re.I,
)
ADDRESS_LIMIT = 300
ADDRESS_LINE_MAX = 100
_ADDRESS_LABEL = re.compile(
    r"^(?:address|our address|head ?office|headquarters|hq|office|location|visit us|find us)\s*:\s*", re.I
)
_CONTACT_LINE = re.compile(r"^(?:tel|phone|fax|call|e-?mail|mail|web|www|https?)\b|@|^[+(]?\d[\d\s().-]{6,}$", re.I)
_COUNTRY_LANGUAGES = ("en", "de", "fr", "es", "it", "nl", "pt", "sv", "da", "pl")


def _organization(snapshot: dict[str, Any]) -> dict[str, Any]:
    for node in jsonld_nodes(snapshot):
        if has_type(node, *_ORG_TYPES):
            return node
    return {}


def _address(org: dict[str, Any], snapshot: dict[str, Any]) -> str:
    """The postal address: JSON-LD first, then schema.org microdata, then an address block's lines."""
    address = org.get("address")
    if isinstance(address, list):
        address = address[0] if address else None
    if isinstance(address, dict):
        return _joined_parts(address)
    if isinstance(address, str):
        return clip_words(clean_text(address), ADDRESS_LIMIT)
    blocks = [b for b in snapshot.get("addresses") or [] if isinstance(b, dict)]
    for block in blocks:
        if block.get("parts"):
            return _joined_parts(block["parts"])
    for block in blocks:
        found = postal_lines([clean_text(line, 300) for line in block.get("lines") or []])
        if found:
            return clip_words(", ".join(found), ADDRESS_LIMIT)
    return ""


def _joined_parts(address: dict[str, Any]) -> str:
    keys = ("streetAddress", "addressLocality", "addressRegion", "postalCode", "addressCountry")
    parts = [address.get(k) for k in keys]
    if isinstance(parts[-1], dict):
        parts[-1] = parts[-1].get("name")
    return clip_words(clean_text(", ".join(str(p) for p in parts if isinstance(p, str | int) and p)), ADDRESS_LIMIT)


def postal_lines(lines: list[str]) -> list[str]:
    """The lines of an address block that make up the postal address.

    An address ends with its last line holding a number (house number, postcode) or naming a
    country; what follows it (a contact person's name, opening hours) is not part of it, and
    neither is anything from the first line too long to be an address line (a paragraph).
    Phone, email and web lines and a leading "Address:" label are dropped. A block without a
    number or a country counts only when it is a single line.
    """
    kept = [_ADDRESS_LABEL.sub("", line).strip(" ,") for line in lines]
    kept = [line for line in kept if line and not _CONTACT_LINE.search(line)]
    long = next((i for i, line in enumerate(kept) if len(line) > ADDRESS_LINE_MAX), len(kept))
    kept = kept[:long]
    numbered = [i for i, line in enumerate(kept) if any(ch.isdigit() for ch in line)]
    start = numbered[-1] + 1 if numbered else 0
    countries = [i for i in range(start, len(kept)) if _is_country(kept[i])]
    if countries or numbered:
        return kept[: max(countries + numbered) + 1]
    return kept if len(kept) == 1 else []


def _is_country(line: str) -> bool:
    return line.strip(" .").casefold() in _country_names()


@functools.cache
def _country_names() -> frozenset[str]:
    """Country names in the languages addresses are most often written in, and their codes.

    From phonenumbers' locale data (loaded on the first address that needs it, about a second
    once per worker process)."""
    from phonenumbers.geodata.locale import LOCALE_DATA

    names = {"usa", "u.s.a", "uk", "u.k"}
    for region, by_language in LOCALE_DATA.items():
        names.add(region.casefold())
        for language in _COUNTRY_LANGUAGES:
            name = by_language.get(language, "")
            if name.startswith("*"):  # the same name as in another language
                name = by_language.get(name[1:], "")
            if name:
                names.add(name.casefold())
    return frozenset(names)


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
    """The company's logo: JSON-LD's, else the best image of the page, else og:image, else an icon."""
    page = snapshot.get("url") or ""
    logo = org.get("logo")
    if isinstance(logo, dict):
        logo = logo.get("url")
    # sorted() is stable: of two equally good images, the first on the page wins.
    ranked = sorted((_rate(image, page) for image in snapshot.get("images") or []), key=lambda rated: -rated[0])
    strong = [url for score, url in ranked if score >= 3]
    weak = [url for score, url in ranked if 0 < score < 3]
    for candidate in (logo, *strong, meta(snapshot, "og:image"), *weak, *(snapshot.get("icons") or [])):
        url = clean_url(candidate, page)
        if url:
            return url
    return ""


def _rate(image: Any, page: str) -> tuple[int, str]:
    """How much an image looks like the site's own logo (0: not at all), and its URL.

    Another site's image is not the logo: one named after a social network, one that links to
    a social profile or off the site (partner and customer logos, badges). Linking to the home
    page, sitting in the header, saying "logo" and naming the site each count for it.
    """
    if not isinstance(image, dict):
        return 0, ""
    url = clean_url(image.get("src"), page)
    link = clean_url(image.get("link"), page)
    hint = str(image.get("hint") or "")
    if not url or _SOCIAL_ICON.search(hint) or _SOCIAL_ICON.search(urlsplit(url).path):
        return 0, ""
    if link and (social_profile(link) is not None or not same_site(link, page)):
        return 0, ""
    score = 0
    if link and urlsplit(link).path == "/":
        score += 4
    if image.get("header"):
        score += 2
    if "logo" in hint.lower():
        score += 2
    if _matches_host(hint, page):
        score += 1
    return score, url


def _careers(snapshot: dict[str, Any]) -> str:
    """The careers page: a link that says so, on the site itself or on a job board."""
    page = snapshot.get("url") or ""
    here = clean_url(page, page)
    for link in snapshot.get("links") or []:
        href = link["href"]
        if _CAREERS.search(link.get("text") or "") or re.search(r"/(careers?|jobs)(/|$)", href, re.I):
            url = clean_url(href, page)
            if not url or url == here:
                continue  # "#", "javascript:" or the page itself: a button, not a careers page
            if same_site(url, page) or any(board in (urlsplit(url).hostname or "") for board in _JOB_BOARDS):
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
        "website": clean_url(snapshot.get("url"), snapshot.get("url") or ""),
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
