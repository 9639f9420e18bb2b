"""Deterministic synthetic people and companies: the same inputs always give the same answer.

Everything derives from a SHA-256 of the normalised inputs, so a test (or a demo) can rely on
the data without a fixture file. About 70% of people and 80% of companies are "found"; names
containing ``nobody`` and domains starting ``nodata`` are never found, and those starting
``always`` always are, so tests can pick either case on purpose. ``outdated`` picks the people
for whom a provider's finder answers an address the verifier rejects (``invalid_emails``).
"""

from __future__ import annotations

import hashlib
from typing import Any

FIRST_NAMES = ("Ada", "Grace", "Alan", "Linus", "Margaret", "Ken", "Barbara", "Dennis", "Frances", "Edsger",
               "Radia", "Tim", "Sophie", "Guido", "Katherine", "John")  # fmt: skip
LAST_NAMES = ("Lovelace", "Hopper", "Turing", "Torvalds", "Hamilton", "Thompson", "Liskov", "Ritchie", "Allen",
              "Dijkstra", "Perlman", "Berners", "Wilson", "Rossum", "Johnson", "McCarthy")  # fmt: skip
TITLES = (("Chief Executive Officer", "c_suite"), ("VP Sales", "vp"), ("Head of Marketing", "head"),
          ("Software Engineer", "senior"), ("Account Executive", "entry"), ("Director of Operations", "director"),
          ("Product Manager", "manager"), ("Chief Technology Officer", "c_suite"))  # fmt: skip
INDUSTRIES = ("Software", "Financial Services", "Marketing and Advertising", "Logistics", "Healthcare",
              "E-commerce", "Education", "Manufacturing")  # fmt: skip
PLACES = (("Paris", "France"), ("Berlin", "Germany"), ("London", "United Kingdom"),
          ("Austin", "United States"), ("Toronto", "Canada"), ("Lisbon", "Portugal"),
          ("Amsterdam", "Netherlands"), ("Singapore", "Singapore"))  # fmt: skip
EMPLOYEES = (8, 25, 60, 140, 320, 900, 2400, 11000)
VERIFIER = (("valid", 95), ("valid", 88), ("valid", 91), ("accept_all", 70), ("invalid", 5), ("unknown", 40),
            ("webmail", 60), ("valid", 97), ("disposable", 10), ("valid", 80))  # fmt: skip


def seed(*parts: object) -> int:
    """A stable number for the normalised ``parts``."""
    text = "|".join(str(p or "").strip().lower() for p in parts)
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "big")


def pick(options: tuple, number: int, salt: int = 0) -> Any:
    return options[(number >> (salt * 5)) % len(options)]


def company_found(domain: str) -> bool:
    domain = domain.lower()
    if domain.startswith("nodata"):
        return False
    return domain.startswith("always") or seed("company", domain) % 100 < 80


def person_found(*parts: object) -> bool:
    joined = " ".join(str(p or "") for p in parts).lower()
    if "nobody" in joined or joined.split("@")[-1].startswith("nodata"):
        return False
    if "always" in joined:
        return True
    return seed("person", *parts) % 100 < 70


def outdated(provider: str, share: float, *parts: object) -> bool:
    """Whether ``provider``'s finder answers an outdated address for this person (``share`` of people)."""
    return share > 0 and seed("outdated", provider, *parts) % 1000 < round(share * 1000)


def outdated_email(email: str) -> str:
    """The address a finder answers when its record is outdated: the verifier always rejects it."""
    return f"invalid.{email}"


def company_name(domain: str) -> str:
    label = domain.lower().split(".")[0]
    return " ".join(w.capitalize() for w in label.replace("_", "-").split("-") if w) or domain


def company(domain: str) -> dict:
    """A company for ``domain`` (call only when ``company_found``)."""
    n = seed("company", domain)
    city, country = pick(PLACES, n, 1)
    name = company_name(domain)
    slug = domain.split(".")[0]
    return {
        "name": name,
        "domain": domain,
        "industry": pick(INDUSTRIES, n, 2),
        "employees": pick(EMPLOYEES, n, 3),
        "founded_year": 1950 + n % 74,
        "city": city,
        "country": country,
        "description": f"{name} builds {pick(INDUSTRIES, n, 2).lower()} products for teams in {country}.",
        "linkedin": f"linkedin.com/company/{slug}",
        "twitter": slug[:15],
        "website_url": f"https://www.{domain}",
    }


def person(first: str, last: str, domain: str) -> dict:
    """A person working at ``domain`` (call only when ``person_found``)."""
    n = seed("person", first, last, domain)
    title, seniority = pick(TITLES, n, 1)
    city, country = pick(PLACES, n, 2)
    first_c, last_c = first.strip().capitalize(), last.strip().capitalize()
    local = f"{first.strip().lower()}.{last.strip().lower()}".replace(" ", "")
    return {
        "first_name": first_c,
        "last_name": last_c,
        "name": f"{first_c} {last_c}",
        "email": f"{local}@{domain}",
        "score": 60 + n % 40,
        "title": title,
        "seniority": seniority,
        "city": city,
        "country": country,
        "linkedin": f"linkedin.com/in/{local.replace('.', '-')}",
        "twitter": local.replace(".", "_")[:15],
        "organization_name": company_name(domain),
        "domain": domain,
    }


def person_by_email(email: str) -> dict:
    """A person behind ``email`` (call only when ``person_found(email)``)."""
    local, _, domain = email.lower().partition("@")
    n = seed("email", email)
    parts = [p for p in local.replace("_", ".").replace("-", ".").split(".") if p.isalpha()]
    first = parts[0] if parts else pick(FIRST_NAMES, n, 1)
    last = parts[1] if len(parts) > 1 else pick(LAST_NAMES, n, 2)
    found = person(first, last, domain)
    found["email"] = email.lower()
    return found


def people_at(domain: str, count: int) -> list[dict]:
    n = seed("people", domain)
    return [person(pick(FIRST_NAMES, n, i), pick(LAST_NAMES, n, i + 6), domain) for i in range(count)]


def verification(email: str) -> tuple[str, int]:
    """(status, score) for ``email``; a local part starting ``invalid`` is always invalid."""
    local = email.lower().split("@")[0]
    if local.startswith("invalid"):
        return "invalid", 0
    if local.startswith("valid") or "always" in local:
        return "valid", 99
    return pick(VERIFIER, seed("verify", email))
