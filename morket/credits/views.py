"""The credits page: the workspace's balance, prices, and its ledger history by kind, newest first."""

from __future__ import annotations

from typing import Any

from flask import Response, current_app, flash, request
from sqlalchemy import select
from wtforms import Field

from morket.accounts.models import User
from morket.core.errors import MorketError
from morket.core.htmx import render_page_or_fragment, wants_fragment
from morket.core.tenancy import workspace_page
from morket.core.types import Member, Workspace
from morket.credits import bp, service
from morket.credits.forms import KIND_LABELS, AdjustCreditsForm, LedgerFilterForm
from morket.credits.models import LedgerEntry
from morket.credits.prices import PRICES
from morket.extensions import db

PAGE_SIZE = 50
# The enrichment run page, when that capability is installed: debits link to the run that made them.
RUN_PAGE = "enrichment.run_page"
# The history's element: the kind filter and the older-entries link swap only it.
HISTORY = "credit-history"


def actor_names(entries: list[LedgerEntry]) -> dict[int, str]:
    """Return the name (or email) of everyone who granted, refunded or adjusted credits on this page, in one query."""
    ids = {entry.actor_id for entry in entries if entry.actor_id is not None}
    if not ids:
        return {}
    rows = db.session.execute(select(User.id, User.name, User.email).where(User.id.in_(ids)))
    return {row.id: row.name or row.email for row in rows}


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
        "actors": actor_names(page.entries),
        "run_links": RUN_PAGE in current_app.view_functions,
    }
    if not wants_fragment(HISTORY):
        context.update(balance=service.balance(workspace.id), prices=sorted(PRICES.items()))
    return render_page_or_fragment(
        "credits/index.html", status, hx_fragment="credits/_history.html", hx_target=HISTORY, **context
    )


# The admin console's credits section (its routes live in morket/admin/views.py, behind its guard) ---

ADMIN_RECENT = 10


def admin_context(workspace, form: AdjustCreditsForm | None = None) -> dict[str, Any]:  # noqa: ANN001
    """Return what the admin's workspace page shows of credits: balance, recent entries, the adjustment form."""
    if form is None:
        form = AdjustCreditsForm(data={"request_id": AdjustCreditsForm.new_request_id()})
    recent = service.list_ledger(workspace.id, limit=ADMIN_RECENT).entries
    return {
        "credits_balance": service.balance(workspace.id),
        "credits_recent": recent,
        "credits_actors": actor_names(recent),
        "credits_form": form,
    }


def adjust_credits(actor: User, workspace) -> AdjustCreditsForm | None:  # noqa: ANN001
    """Apply the posted adjustment and commit; return None when done, else the form with its errors.

    The form's ``request_id`` (drawn when the page was shown) is the idempotency key, so posting
    the same form twice adjusts once.
    """
    form = AdjustCreditsForm(request.form)
    if not form.validate():
        return form
    try:
        entry = service.admin_adjust(
            actor, workspace, form.amount.data, form.note.data, idempotency_key=f"admin:{form.request_id.data}"
        )
    except MorketError as exc:
        db.session.rollback()
        field = getattr(form, next(iter(exc.fields), ""), None)
        if isinstance(field, Field) and field is not form.request_id:
            field.errors = [*field.errors, exc.message]
        else:
            form.form_errors.append(exc.message)
        return form
    db.session.commit()
    if entry is None:
        flash("That adjustment was applied already.", "info")
    else:
        flash(f"{entry.amount:+,} credits for {workspace.name}; the balance is now {entry.balance_after:,}.", "success")
    return None
