"""The SQL normaliser of match keys, shared by the import's dedupe key, the dedupe pages and lookup columns.

Two cells are the same for dedupe (and a lookup matches) when their normalised text is equal: case
and surrounding spaces never count; emails compare lower-cased; domains and URLs without scheme, ``www.`` and
(for domains) path; phones by their digits; other text with runs of whitespace as one space.
"""

from __future__ import annotations

MATCH_KINDS = ("text", "email", "domain", "url", "phone")


def normalised_sql(expr: str, kind: str) -> str:
    """Return SQL normalising a cell for dedupe and lookups: case, whitespace, emails, domains, URLs, phones.

    Every function used is IMMUTABLE, so the result can be an expression index's expression.
    """
    text = f"btrim(CAST({expr} AS text))"
    if kind == "email":
        return f"lower({text})"
    if kind == "domain":
        bare = rf"regexp_replace(lower({text}), '^[a-z][a-z0-9+.-]*://', '')"
        return rf"regexp_replace({bare}, '^www\.|[/:?#].*$', '', 'g')"
    if kind == "url":
        return rf"regexp_replace(regexp_replace(lower({text}), '^[a-z][a-z0-9+.-]*://(www\.)?', ''), '/+$', '')"
    if kind == "phone":
        return f"regexp_replace({text}, '[^0-9]', '', 'g')"
    return rf"lower(regexp_replace({text}, '\s+', ' ', 'g'))"
