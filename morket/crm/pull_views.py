"""Pull pages: import from HubSpot or Salesforce into a new or existing table (choose, preview, start, progress).

Members and up preview and start pulls (``crm.use``); viewers see the sources, their last run and
a pull's progress (``crm.view``).
"""

from __future__ import annotations

from flask import Response, abort, flash, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue
from flask_login import current_user

from morket.core.errors import MorketError
from morket.core.htmx import add_toast, render_page_or_fragment
from morket.core.roles import can
from morket.core.tenancy import workspace_page
from morket.core.types import Member, Workspace
from morket.crm import bp, pull, service
from morket.crm.providers import SPECS
from morket.extensions import db, limiter
from morket.tables import service as tables

PULL_LIMIT = "30 per minute"
FINAL = ("done", "failed", "cancelled")


def _form_raw() -> tuple[str, str, dict]:
    form = request.form
    provider = form.get("provider", "")
    kind = form.get("kind") or ("query" if provider == "salesforce" else "list")
    where = []
    for i in range(pull.MAX_WHERE):
        field = form.get(f"where_field_{i}", "").strip()
        if field:
            where.append([field, form.get(f"where_op_{i}", "="), form.get(f"where_value_{i}", "")])
    raw = {"list_id": form.get("list_id", "").strip(), "object": form.get("object", "").strip(),
           "fields": form.get("fields", ""), "where": where, "soql": form.get("soql", "").strip()}  # fmt: skip
    return provider, kind, raw


def _table_or_none(workspace: Workspace):
    table_id = request.values.get("table_id", "")
    return tables.get_table_or_404(workspace, int(table_id)) if table_id.isdigit() else None


@bp.get("/w/<slug>/crm/pull")
@workspace_page("crm.view")
def pull_page(workspace: Workspace, membership: Member) -> Response:
    table = _table_or_none(workspace)
    connections = service.list_connections(workspace)
    sources = pull.list_sources(workspace, table)
    names = {t.id: t.name for t in tables.list_tables(workspace)} if sources else {}
    return render_page_or_fragment(
        "crm/pull.html",
        workspace=workspace,
        membership=membership,
        table=table,
        specs=SPECS,
        connections=connections,
        sources=[(s, pull.latest_pull(s)) for s in sources],
        table_names=names,
        can_use=can(membership.role, "crm.use"),
        can_manage=can(membership.role, "crm.manage"),
        operators=list(pull.pull_read.OPERATORS),
        max_where=pull.MAX_WHERE,
    )


@bp.post("/w/<slug>/crm/pull/preview")
@limiter.limit(PULL_LIMIT)
@workspace_page("crm.use")
def pull_preview(workspace: Workspace, membership: Member) -> ResponseReturnValue:
    provider, kind, raw = _form_raw()
    try:
        spec, rows = pull.preview(workspace, provider, kind, raw, actor=current_user)
    except MorketError as exc:
        db.session.rollback()
        return render_template("crm/_pull_preview.html", problem=exc.message, spec=None, rows=[])
    db.session.commit()  # a refreshed token stays
    return render_template("crm/_pull_preview.html", problem=None, spec=spec, rows=rows)


@bp.post("/w/<slug>/crm/pull/start")
@limiter.limit(PULL_LIMIT)
@workspace_page("crm.use")
def pull_start(workspace: Workspace, membership: Member) -> ResponseReturnValue:
    provider, kind, raw = _form_raw()
    table = _table_or_none(workspace)
    try:
        source = pull.create_source(
            workspace, current_user, provider, kind, raw, table=table, table_name=request.form.get("table_name"),
            key_column=request.form.get("key_column") or None, on_delete=request.form.get("on_delete") or "keep",
        )  # fmt: skip
        started = pull.start_pull(workspace, current_user, source, full=True)
    except MorketError as exc:
        db.session.rollback()
        flash(exc.message, "error")
        return redirect(url_for("crm.pull_page", slug=workspace.slug, table_id=table.id if table else None), code=303)
    db.session.commit()
    flash(f"Pulling {source.label}: the rows appear in the table as they arrive.", "success")
    return redirect(url_for("crm.pull_page", slug=workspace.slug, table_id=source.table_id, pull=started.id), code=303)


@bp.post("/w/<slug>/crm/pull-sources/<int:pull_source_id>/again")
@limiter.limit(PULL_LIMIT)
@workspace_page("crm.use")
def pull_again(workspace: Workspace, membership: Member, pull_source_id: int) -> ResponseReturnValue:
    try:
        source = pull.get_source_or_404(workspace, pull_source_id)
    except MorketError:
        abort(404)
    try:
        started = pull.start_pull(workspace, current_user, source, full=request.form.get("full") == "1")
    except MorketError as exc:
        db.session.rollback()
        flash(exc.message, "error")
        return redirect(url_for("crm.pull_page", slug=workspace.slug, table_id=source.table_id), code=303)
    db.session.commit()
    return redirect(url_for("crm.pull_page", slug=workspace.slug, table_id=source.table_id, pull=started.id), code=303)


@bp.get("/w/<slug>/crm/pulls/<int:pull_id>")
@workspace_page("crm.view")
def pull_progress(workspace: Workspace, membership: Member, pull_id: int) -> ResponseReturnValue:
    try:
        found = pull.get_pull_or_404(workspace, pull_id)
    except MorketError:
        abort(404)
    resp = Response(render_template("crm/_pull_progress.html", workspace=workspace, pull=found, final=FINAL))
    if found.status in FINAL and request.args.get("polling"):
        kind = {"done": "success", "failed": "error"}.get(found.status, "info")
        removed = f", {found.removed} removed" if found.removed else ""
        words = {"done": f"Pull finished: {found.rows_read} read, {found.inserted} new, {found.updated} updated"
                         f"{removed}.",
                 "failed": f"Pull failed: {found.error}", "cancelled": "Pull cancelled."}  # fmt: skip
        add_toast(resp, words[found.status], kind)
    return resp


@bp.post("/w/<slug>/crm/pulls/<int:pull_id>/cancel")
@workspace_page("crm.use")
def pull_cancel(workspace: Workspace, membership: Member, pull_id: int) -> ResponseReturnValue:
    try:
        found = pull.cancel_pull(workspace, pull.get_pull_or_404(workspace, pull_id))
    except MorketError:
        abort(404)
    db.session.commit()
    return render_template("crm/_pull_progress.html", workspace=workspace, pull=found, final=FINAL)
