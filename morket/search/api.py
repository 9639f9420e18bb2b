"""The JSON API of search under /api/v1: search with facets and paging, and typeahead."""

from __future__ import annotations

from pydantic import Field

from morket.api.routing import Principal, WithMeta, api_route
from morket.api.schemas import Out, Request
from morket.core.errors import ValidationFailed
from morket.search import service
from morket.search.engine import QUERY_MAX, Filters

TAG = "Search"
_LIST_MAX = 50


class SearchQuery(Request):
    q: str = Field(min_length=1, max_length=QUERY_MAX, description="What to find: words, a name, an email, a domain.")
    page: int = Field(default=1, ge=1, le=1000)
    per_page: int = Field(default=20, ge=1, le=service.PER_PAGE_MAX)
    table: str | None = Field(default=None, max_length=1000, description="Only these tables: ids, comma-separated.")
    column: str | None = Field(default=None, max_length=1000, description="Only these columns: ids, comma-separated.")
    state: str | None = Field(
        default=None, max_length=1000, description="Rows with an enrichment cell in these states."
    )
    provider: str | None = Field(default=None, max_length=1000, description="Rows enriched by these providers.")


class TypeaheadQuery(Request):
    q: str = Field(min_length=1, max_length=QUERY_MAX)


class HitOut(Out):
    table_id: int
    table_name: str
    row_id: int
    column_id: int
    column_name: str
    value: str = Field(description="The matching cell's text (plain; escape it before showing it).")
    score: float
    states: list[str]
    providers: list[str]
    highlights: list[list[int]] = Field(description="[start, end) character ranges of value that matched.")


class FacetOut(Out):
    key: str
    label: str
    count: int


class SearchMeta(Out):
    total: int
    capped: bool = Field(description="True when there were more candidates than were ranked.")
    page: int
    per_page: int
    facets: dict[str, list[FacetOut]]


class GroupOut(Out):
    table_id: int
    table_name: str
    hits: list[HitOut]


def _ids(raw: str | None, name: str) -> tuple[int, ...]:
    if not raw:
        return ()
    parts = [p.strip() for p in raw.split(",") if p.strip()]
    if len(parts) > _LIST_MAX or not all(p.isascii() and p.isdigit() and len(p) < 19 for p in parts):
        raise ValidationFailed(f"{name} takes ids separated by commas.", fields={name: ["ids, comma-separated"]})
    return tuple(int(p) for p in parts)


def _words(raw: str | None, name: str) -> tuple[str, ...]:
    if not raw:
        return ()
    parts = tuple(p.strip() for p in raw.split(",") if p.strip())
    if len(parts) > _LIST_MAX:
        raise ValidationFailed(f"{name}: at most {_LIST_MAX} values.", fields={name: ["too many"]})
    return parts


def _hit(row: service.ResultRow) -> HitOut:
    ranges, at = [], 0
    for text, matched in row.segments:
        if matched:
            ranges.append([at, at + len(text)])
        at += len(text)
    return HitOut(
        table_id=row.table_id,
        table_name=row.table_name,
        row_id=row.row_id,
        column_id=row.column_id,
        column_name=row.column_name,
        value=row.value,
        score=round(row.score, 4),
        states=list(row.states),
        providers=list(row.providers),
        highlights=ranges,
    )


@api_route(
    "/search",
    "GET",
    summary="Search every table of the workspace",
    tag=TAG,
    permission="tables.view",
    query=SearchQuery,
    meta=SearchMeta,
    response=list[HitOut],
)
def search(principal: Principal, query: SearchQuery) -> WithMeta:
    """Rows whose cells match ``q`` (typos, prefixes, emails and domains normalised), best first, one
    hit per row; facets count every match by table, column, enrichment state and provider."""
    filters = Filters(
        table_ids=_ids(query.table, "table"),
        column_ids=_ids(query.column, "column"),
        states=_words(query.state, "state"),
        providers=_words(query.provider, "provider"),
    )
    results = service.search(
        principal.workspace, principal.role, query.q, filters, page=query.page, per_page=query.per_page
    )
    meta = SearchMeta(
        total=results.total,
        capped=results.capped,
        page=results.page,
        per_page=results.per_page,
        facets={k: [FacetOut(key=f.key, label=f.label, count=f.count) for f in v] for k, v in results.facets.items()},
    )
    return WithMeta([_hit(r) for r in results.rows], meta.model_dump())


@api_route(
    "/search/typeahead",
    "GET",
    summary="Top matches grouped by table",
    tag=TAG,
    permission="tables.view",
    query=TypeaheadQuery,
    response=list[GroupOut],
)
def typeahead(principal: Principal, query: TypeaheadQuery) -> list[GroupOut]:
    """At most five tables, three rows each, best first: what a search box shows as you type."""
    groups = service.typeahead(principal.workspace, principal.role, query.q)
    return [GroupOut(table_id=g.table_id, table_name=g.table_name, hits=[_hit(r) for r in g.rows]) for g in groups]
