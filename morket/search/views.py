"""Pages of search: the results page with facet chips, and the header box's typeahead fragment."""

from __future__ import annotations

from flask import render_template, request, url_for

from morket.core.errors import ValidationFailed
from morket.core.htmx import render_page_or_fragment
from morket.core.tenancy import workspace_page
from morket.core.types import Member, Workspace
from morket.search import bp, service
from morket.search.engine import Filters
from morket.tables.hooks import CELL_STATE_LABELS

_FACETS = (("table", "Table"), ("column", "Column"), ("state", "Enrichment state"), ("provider", "Provider"))


def _list(name: str, *, ids: bool) -> tuple:
    raw = request.args.get(name, "")
    parts = tuple(p.strip() for p in raw.split(",") if p.strip())[:50]
    if ids:
        return tuple(int(p) for p in parts if p.isascii() and p.isdigit() and len(p) < 19)
    return parts


def _filters() -> Filters:
    return Filters(
        table_ids=_list("table", ids=True),
        column_ids=_list("column", ids=True),
        states=_list("state", ids=False),
        providers=_list("provider", ids=False),
    )


def _page() -> int:
    raw = request.args.get("page", "1")
    return int(raw) if raw.isascii() and raw.isdigit() and 0 < int(raw) <= 1000 else 1


def row_url(workspace: Workspace, table_id: int, row_id: int) -> str:
    """Where a result opens: its table's grid, scrolled to the row, its panel open."""
    return url_for("tables.grid", slug=workspace.slug, table_id=table_id, row=row_id)


@bp.get("/w/<slug>/search")
@workspace_page("tables.view")
def results(workspace: Workspace, membership: Member):
    """The results page: every matching row, best first, with facets as filter chips."""
    query = (request.args.get("q") or "").strip()
    filters = _filters()
    found, error, status = None, None, 200
    if query:
        try:
            found = service.search(workspace, membership.role, query, filters, page=_page(), per_page=25)
        except ValidationFailed as exc:
            error, status = exc.message, 422
    chosen = {"table": filters.table_ids, "column": filters.column_ids, "state": filters.states}
    chosen["provider"] = filters.providers

    def chip_url(kind: str, key: str) -> str:
        args = {k: ",".join(str(v) for v in values) for k, values in chosen.items() if values}
        current = [str(v) for v in chosen[kind]]
        picked = [v for v in current if v != key] if key in current else [*current, key]
        if picked:
            args[kind] = ",".join(picked)
        else:
            args.pop(kind, None)
        return url_for("search.results", slug=workspace.slug, q=query, **args)

    def page_url(page: int) -> str:
        args = {k: ",".join(str(v) for v in values) for k, values in chosen.items() if values}
        return url_for("search.results", slug=workspace.slug, q=query, page=page, **args)

    return render_page_or_fragment(
        "search/results.html",
        status,
        workspace=workspace,
        membership=membership,
        query=query,
        found=found,
        error=error,
        facets=_FACETS,
        chosen={k: {str(v) for v in values} for k, values in chosen.items()},
        chip_url=chip_url,
        page_url=page_url,
        row_url=lambda table_id, row_id: row_url(workspace, table_id, row_id),
        state_labels=CELL_STATE_LABELS,
    )


@bp.get("/w/<slug>/search/typeahead")
@workspace_page("tables.view")
def typeahead(workspace: Workspace, membership: Member):
    """The header box's suggestions (an htmx fragment): top matches grouped by table."""
    query = (request.args.get("q") or "").strip()
    groups, error = [], None
    if query:
        try:
            groups = service.typeahead(workspace, membership.role, query)
        except ValidationFailed as exc:
            error = exc.message
    return render_template(
        "search/_typeahead.html",
        workspace=workspace,
        query=query,
        groups=groups,
        error=error,
        row_url=lambda table_id, row_id: row_url(workspace, table_id, row_id),
    )
