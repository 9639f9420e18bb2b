"""Admin console pages: users, workspaces, a workspace's members. Guarded by ``_hide_admin``."""

from __future__ import annotations

from flask import flash, redirect, render_template, request, url_for
from flask_login import current_user

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
from morket.credits import views as credits_views
from morket.extensions import db


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


@bp.get("/workspaces/<int:workspace_id>")
def workspace(workspace_id: int):
    """One workspace and its members with their roles."""
    found, members = get_workspace_with_members(current_user._get_current_object(), workspace_id)
    return render_template(
        "admin/workspace.html", workspace=found, members=members, **credits_views.admin_context(found)
    )


@bp.post("/workspaces/<int:workspace_id>/credits")
def adjust_credits(workspace_id: int):
    """Add or remove a workspace's credits by hand, with a reason; recorded in its ledger and audited."""
    found, members = get_workspace_with_members(current_user._get_current_object(), workspace_id)
    form = credits_views.adjust_credits(current_user._get_current_object(), found)
    if form is None:
        return redirect(url_for("admin.workspace", workspace_id=found.id))
    context = credits_views.admin_context(found, form)
    return render_template("admin/workspace.html", workspace=found, members=members, **context), 422
