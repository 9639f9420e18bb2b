"""The credits page: the workspace's balance, prices, and its ledger history by kind, newest first."""

from __future__ import annotations

from flask import Response, current_app, request

from morket.core.htmx import render_page_or_fragment, wants_fragment
from morket.core.tenancy import workspace_page
from morket.core.types import Member, Workspace
from morket.credits import bp, service
from morket.credits.forms import KIND_LABELS, LedgerFilterForm
from morket.credits.prices import PRICES

PAGE_SIZE = 50
# The enrichment run page, when that capability is installed: debits link to the run that made them.
RUN_PAGE = "enrichment.run_page"
# The history's element: the kind filter and the older-entries link swap only it.
HISTORY = "credit-history"


@bp.get("/w/<slug>/credits")
@workspace_page("credits.view")
def index(workspace: Workspace, membership: Member) -> Response:
    """Balance and history; the kind filter and the older-entries link swap only the history under htmx."""
    form = LedgerFilterForm(request.args)
    status = 200
    if form.validate():
        page = service.list_ledger(workspace.id, kind=form.kind.data or None, before=form.before.data, limit=PAGE_SIZE)
    else:
        status = 422
        page = service.LedgerPage(entries=[], next_cursor=None)
    context = {
        "workspace": workspace,
        "membership": membership,
        "form": form,
        "page": page,
        "kind": form.kind.data or "" if not form.kind.errors else "",
        "kind_labels": KIND_LABELS,
        "actors": service.actor_names(page.entries),
        "run_links": RUN_PAGE in current_app.view_functions,
    }
    if not wants_fragment(HISTORY):
        context.update(balance=service.balance(workspace.id), prices=sorted(PRICES.items()))
    return render_page_or_fragment(
        "credits/index.html", status, hx_fragment="credits/_history.html", hx_target=HISTORY, **context
    )
