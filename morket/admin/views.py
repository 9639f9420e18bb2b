"""Admin console pages: users, workspaces, a workspace's members. Guarded by ``_hide_admin``."""

from __future__ import annotations

from flask import flash, redirect, render_template, request, url_for
from flask_login import current_user
from wtforms import Field

from morket.admin import bp
from morket.admin.forms import SearchListForm
from morket.admin.service import (
    DEFAULT_PER_PAGE,
    get_workspace_with_members,
    list_users,
    list_workspaces,
    set_user_disabled,
)
from morket.core.errors import MorketError
from morket.credits import service as credits
from morket.credits.forms import AdjustCreditsForm
from morket.extensions import db
from morket.search import indexing as search_indexing


def _list_args() -> tuple[SearchListForm, dict[str, object], int]:
    """Read search and paging from the query string; invalid input shows its error and the first page."""
    form = SearchListForm(request.args)
    if not form.validate():
        return form, {}, 422
    return (
        form,
        {
            "search": (form.q.data or "").strip(),
            "page": form.page.data or 1,
            "per_page": form.per_page.data or DEFAULT_PER_PAGE,
        },
        200,
    )


@bp.get("")
def index():
    """The users list, with search and pages."""
    form, args, status = _list_args()
    page = list_users(current_user._get_current_object(), **args)
    return render_template("admin/users.html", form=form, page=page, search=args.get("search", "")), status


@bp.post("/users/<int:user_id>/disable")
def disable_user(user_id: int):
    return _toggle_user(user_id, disabled=True)


@bp.post("/users/<int:user_id>/enable")
def enable_user(user_id: int):
    return _toggle_user(user_id, disabled=False)


def _toggle_user(user_id: int, *, disabled: bool):
    try:
        user = set_user_disabled(current_user._get_current_object(), user_id, disabled=disabled)
    except MorketError as exc:
        if exc.status == 404:
            raise
        db.session.rollback()
        flash(exc.message, "error")
    else:
        db.session.commit()
        flash(f"{user.email} is {'disabled and signed out everywhere' if disabled else 'enabled again'}.", "success")
    return redirect(_back_to_list())


def _back_to_list() -> str:
    """Return to the list the admin came from (same search and page), never to another site."""
    q = request.form.get("q", "")[:100]
    page = request.form.get("page", "")
    params = {k: v for k, v in {"q": q, "page": page if page.isdigit() else ""}.items() if v}
    return url_for("admin.index", **params)


@bp.get("/workspaces")
def workspaces():
    """The workspaces list, with search and pages."""
    form, args, status = _list_args()
    page = list_workspaces(current_user._get_current_object(), **args)
    return render_template("admin/workspaces.html", form=form, page=page, search=args.get("search", "")), status


@bp.get("/search")
def search_index():
    """How far the workspace search index is behind the tables: rows waiting, oldest wait, recent lag."""
    return render_template("admin/search.html", report=search_indexing.lag_report())


@bp.get("/workspaces/<int:workspace_id>")
def workspace(workspace_id: int):
    """One workspace and its members with their roles."""
    found, members = get_workspace_with_members(current_user._get_current_object(), workspace_id)
    return render_template("admin/workspace.html", workspace=found, members=members, **_credits_context(found))


@bp.post("/workspaces/<int:workspace_id>/credits")
def adjust_credits(workspace_id: int):
    """Add or remove a workspace's credits by hand, with a reason; recorded in its ledger and audited."""
    found, members = get_workspace_with_members(current_user._get_current_object(), workspace_id)
    form = _adjust_credits(current_user._get_current_object(), found)
    if form is None:
        return redirect(url_for("admin.workspace", workspace_id=found.id))
    context = _credits_context(found, form)
    return render_template("admin/workspace.html", workspace=found, members=members, **context), 422


# A workspace's credits in the console: the balance, recent entries and a hand adjustment.

CREDITS_RECENT = 10


def _credits_context(workspace, form: AdjustCreditsForm | None = None) -> dict[str, object]:
    """Return what the workspace page shows of credits: balance, recent entries, the adjustment form."""
    if form is None:
        form = AdjustCreditsForm(data={"request_id": AdjustCreditsForm.new_request_id()})
    recent = credits.list_ledger(workspace.id, limit=CREDITS_RECENT).entries
    return {
        "credits_balance": credits.balance(workspace.id),
        "credits_recent": recent,
        "credits_actors": credits.actor_names(recent),
        "credits_form": form,
    }


def _adjust_credits(actor, workspace) -> AdjustCreditsForm | None:
    """Apply the posted adjustment and commit; return None when done, else the form with its errors.

    The form's ``request_id`` (drawn when the page was shown) is the idempotency key, so posting
    the same form twice adjusts once.
    """
    form = AdjustCreditsForm(request.form)
    if not form.validate():
        return form
    try:
        entry = credits.admin_adjust(
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
