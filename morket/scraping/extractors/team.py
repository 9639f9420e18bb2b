"""Team or contact page: the people a page marks up, with their titles, plus its contact details."""

from __future__ import annotations

from typing import Any

from morket.scraping.extractors import Extractor
from morket.scraping.extractors._common import clean_url, emails, has_type, jsonld_nodes, phones, socials
from morket.scraping.extractors.normalise import clean_text, social_profile


def _linkedin(value: Any, page: str) -> str:
    url = clean_url(value, page)
    profile = social_profile(url) if url else None
    return profile[2] if profile is not None and profile[0] == "linkedin" else ""


def people(snapshot: dict[str, Any]) -> list[dict[str, str]]:
    """People from JSON-LD Person nodes and schema.org or class-marked HTML, de-duplicated by name."""
    found: dict[str, dict[str, str]] = {}
    page = snapshot.get("url") or ""
    for node in jsonld_nodes(snapshot):
        if has_type(node, "Person") and isinstance(node.get("name"), str):
            same = node.get("sameAs")
            links = same if isinstance(same, list) else [same]
            entry = {
                "name": clean_text(node["name"], 200),
                "title": clean_text(node.get("jobTitle"), 200) if isinstance(node.get("jobTitle"), str) else "",
                "linkedin": next((_linkedin(u, page) for u in links if _linkedin(u, page)), ""),
            }
            found.setdefault(entry["name"].lower(), entry)
    for person in snapshot.get("people") or []:
        name = clean_text(person.get("name"), 200)
        if not name or len(name.split()) > 6:
            continue
        entry = {
            "name": name,
            "title": clean_text(person.get("title"), 200),
            "linkedin": _linkedin(person.get("linkedin"), page),
        }
        found.setdefault(name.lower(), entry)
    return list(found.values())[:200]


def extract(snapshot: dict[str, Any]) -> dict[str, Any]:
    """Read a team, about or contact page."""
    return {
        "people": people(snapshot),
        "emails": emails(snapshot),
        "phones": phones(snapshot),
        "socials": socials(snapshot),
    }


EXTRACTOR = Extractor(
    name="team",
    label="Team or contact page",
    fields=("people", "emails", "phones", "socials"),
    extract=extract,
    description="Names and titles of the people a page marks up, and its contact details.",
)
