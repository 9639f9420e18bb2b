"""The seam between the search service and its engines.

The service (``morket.search.service``) parses the query, checks who asks, groups hits by row,
ranks, builds facets and pages; an engine only finds scored candidate cells of one workspace.
PostgreSQL (``morket.search.postgres``) is the default; OpenSearch (``morket.search.opensearch``)
implements the same protocol and is chosen when ``MORKET_OPENSEARCH_URL`` is set.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Protocol

QUERY_MAX = 200
TOKENS_MAX = 8
_DOMAIN = re.compile(r"^(?:[a-z][a-z0-9+.-]*://)?(?:www\.)?([\w-]+(?:\.[\w-]+)+)(?:[/:?#].*)?$", re.IGNORECASE)
# Company-name words written long or short meet: "ACME Corporation" is "acme corp" in the index.
COMPANY_WORDS = {"corporation": "corp", "incorporated": "inc", "company": "co", "limited": "ltd"}
_COMPANY = re.compile(r"\b(" + "|".join(COMPANY_WORDS) + r")\b")
_EMAIL = re.compile(r"^[^\s@]+@[^\s@]+\.[^\s@]+$")


@dataclass(frozen=True)
class ParsedQuery:
    """A query as every engine receives it: the raw text, its normalised form and its word tokens."""

    raw: str
    norm: str
    tokens: tuple[str, ...]


def parse_query(raw: str) -> ParsedQuery:
    """Normalise like the index does: lower case, single spaces, company words short ("corporation" ->
    "corp"); an email lower-cased; a domain or URL without scheme, ``www.`` and path
    (``https://www.ACME.com/x`` -> ``acme.com``)."""
    text = " ".join(raw.split()).lower()
    norm = text
    if " " not in text and not _EMAIL.match(text):
        found = _DOMAIN.match(text)
        if found and "." in found.group(1):
            norm = found.group(1)
    if norm == text:
        norm = _COMPANY.sub(lambda m: COMPANY_WORDS[m.group(1)], norm)
    tokens = tuple(dict.fromkeys(re.findall(r"\w+", norm)))[:TOKENS_MAX]
    return ParsedQuery(raw=raw, norm=norm, tokens=tokens)


@dataclass(frozen=True)
class Filters:
    """Facet filters; empty means no filter on that facet."""

    table_ids: tuple[int, ...] = ()
    column_ids: tuple[int, ...] = ()
    states: tuple[str, ...] = ()
    providers: tuple[str, ...] = ()

    @property
    def empty(self) -> bool:
        return not (self.table_ids or self.column_ids or self.states or self.providers)


@dataclass(frozen=True)
class Hit:
    """One matching cell: where it is, the text it shows, the row's enrichment facets, and a score.

    Scores follow one rule whatever the engine: 0 to 1 for how close the text is to the query
    (trigram similarity of the whole cell or of its best-matching words), plus 0.25 when every
    query word starts a word of the cell, 0.5 when the cell starts with the query, and 1 when the
    cell is the query (after normalising).
    """

    table_id: int
    row_id: int
    column_id: int
    value: str
    score: float
    states: tuple[str, ...] = field(default=())
    providers: tuple[str, ...] = field(default=())
    # The table's and column's names when the engine read them with the hit (None: the service looks them up).
    table_name: str | None = None
    column_name: str | None = None


class Engine(Protocol):
    """Finds the cells of one workspace that match a query; nothing of another workspace, ever."""

    name: str

    def find(self, workspace_id: int, query: ParsedQuery, filters: Filters, cap: int) -> list[Hit]:
        """Return at most ``cap`` candidate cells per way of matching, scored (any order)."""
        ...
