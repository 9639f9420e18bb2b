"""The "Send to CRM" page of a table: field mapping (members edit, viewers read), preview, push, progress."""

from __future__ import annotations

from typing import Any

from flask import Response, abort, flash, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue
from flask_login import current_user

from morket.core.errors import MorketError
from morket.core.htmx import render_page_or_fragment
from morket.core.roles import can
from morket.core.tenancy import workspace_page
from morket.core.types import Member, Workspace
from morket.crm import bp, service
from morket.crm import mapping as mappings
from morket.crm import push as pushes
from morket.crm.providers import SPECS
from morket.extensions import db, limiter
from morket.runs.models import Run
from morket.tables.access import get_table_or_404
from morket.tables.models import View

PUSH_LIMIT = "20 per minute"
PREVIEW_LIMIT = "30 per minute"


def _spec(provider: str):
    return SPECS.get(provider) or abort(404)


def _row_ids(raw: str | None) -> list[int]:
    ids = []
    for part in (raw or "").replace(" ", "").split(","):
        if part.isdigit():
            ids.append(int(part))
    return ids


def _page(workspace: Workspace, membership: Member, table_id: int, provider: str, *, status: int = 200,
          payload: dict[str, Any] | None = None, problem: str | None = None) -> Response:  # fmt: skip
    spec = _spec(provider)
    table = get_table_or_404(workspace, table_id)
    connection = service.get_connection(workspace, provider)
    objects, plan = [], None
    if connection is not None:
        try:
            objects = service.describe_objects(workspace, provider)
            plan = mappings.mapping_for_form(workspace, table, provider, objects, request.args.get("object") or None)
        except MorketError as exc:
            problem = problem or exc.message
    if plan is not None and payload is not None:
        # A refused save shows what was submitted, not the saved mapping.
        plan.object = payload.get("object", plan.object)
        plan.key_field = payload.get("key_field", plan.key_field)
        plan.fields = payload.get("fields", plan.fields)
    schema = next((o for o in objects if plan is not None and o.name == plan.object), None)
    views = db.session.query(View).filter(View.table_id == table.id, View.workspace_id == workspace.id).all()
    runs = (
        db.session.query(Run)
        .filter(Run.workspace_id == workspace.id, Run.table_id == table.id, Run.kind == pushes.KIND)
        .order_by(Run.id.desc())
        .limit(5)
        .all()
    )
    db.session.commit()  # a refreshed token or the connection's health stays
    resp = render_page_or_fragment(
        "crm/push.html",
        workspace=workspace,
        membership=membership,
        table=table,
        spec=spec,
        provider=provider,
        connection=connection,
        objects=objects,
        schema=schema,
        plan=plan,
        mapped={p["field"]: p["column_id"] for p in (plan.fields if plan else [])},
        checks={c["field"]: c for c in (plan.checks if plan else [])},
        columns=mappings.sendable_columns(table),
        text_columns=[c for c in table.live_columns if c.type in ("text", "long_text")],
        views=views,
        selected=request.args.get("rows", ""),
        runs=[pushes.progress(r) for r in runs],
        can_use=can(membership.role, "crm.use"),
        problem=problem,
        row_key=mappings.ROW_ID_KEY,
    )
    resp.status_code = status
    resp.headers["Cache-Control"] = "no-store"
    return resp


@bp.app_template_global("crm_send_targets")
def crm_send_targets(workspace: Workspace) -> list[dict[str, Any]]:
    """The CRMs a table's "Send to" menu offers: each with its label and whether it is connected."""
    found = service.list_connections(workspace)
    return [
        {"provider": name, "label": spec.label, "connected": found.get(name) is not None}
        for name, spec in SPECS.items()
    ]


@bp.get("/w/<slug>/tables/<int:table_id>/crm/<provider>")
@workspace_page("crm.view")
def push_page(workspace: Workspace, membership: Member, table_id: int, provider: str) -> Response:
    return _page(workspace, membership, table_id, provider)


def _form_payload() -> dict[str, Any]:
    form = request.form
    fields = [
        {"column_id": value, "field": name[len("field__") :]}
        for name, value in form.items()
        if name.startswith("field__") and value
    ]
    return {
        "object": form.get("object", ""),
        "key_field": form.get("key_field", ""),
        "key_column_id": form.get("key_column_id", ""),
        "record_id_column_id": form.get("record_id_column_id", ""),
        "fields": fields,
    }


@bp.post("/w/<slug>/tables/<int:table_id>/crm/<provider>/mapping")
@workspace_page("crm.use")
def save_mapping(workspace: Workspace, membership: Member, table_id: int, provider: str) -> ResponseReturnValue:
    _spec(provider)
    table = get_table_or_404(workspace, table_id, lock="update")
    payload = _form_payload()
    try:
        objects = pushes.crm_objects(workspace, provider)
        _, plan = mappings.save_mapping(workspace, current_user, table, provider, objects, payload)
    except MorketError as exc:
        db.session.rollback()
        status = exc.status if exc.status < 500 else 502
        return _page(workspace, membership, table_id, provider, status=status, payload=payload, problem=exc.message)
    db.session.commit()
    warnings = [c["message"] for c in plan.checks if c["level"] == "warn"]
    flash("Mapping saved." + (" " + " ".join(warnings) if warnings else ""), "warning" if warnings else "success")
    return redirect(url_for("crm.push_page", slug=workspace.slug, table_id=table_id, provider=provider), code=303)


def _scope_args() -> dict[str, Any]:
    form = request.form
    view_id = form.get("view_id") or None
    return {
        "scope": form.get("scope", "all"),
        "row_ids": _row_ids(form.get("row_ids")),
        "view_id": int(view_id) if view_id and view_id.isdigit() else None,
    }


@bp.post("/w/<slug>/tables/<int:table_id>/crm/<provider>/preview")
@limiter.limit(PREVIEW_LIMIT)
@workspace_page("crm.use")
def preview(workspace: Workspace, membership: Member, table_id: int, provider: str) -> ResponseReturnValue:
    spec = _spec(provider)
    table = get_table_or_404(workspace, table_id)
    try:
        found = pushes.preview(workspace, table, provider, **_scope_args())
        estimate = pushes.estimate(workspace, table, provider, **_scope_args())
    except MorketError as exc:
        db.session.rollback()
        return Response(render_template("crm/_push_preview.html", problem=exc.message, spec=spec), status=200)
    changes = pushes.remember_changes(workspace, current_user, table, provider, found) if found.changed_ids else None
    db.session.commit()
    return render_template("crm/_push_preview.html", preview=found.as_dict(), estimate=estimate, spec=spec,
                           problem=None, changes=changes)  # fmt: skip


@bp.post("/w/<slug>/tables/<int:table_id>/crm/<provider>/push")
@limiter.limit(PUSH_LIMIT)
@workspace_page("crm.use")
def start_push(workspace: Workspace, membership: Member, table_id: int, provider: str) -> ResponseReturnValue:
    _spec(provider)
    table = get_table_or_404(workspace, table_id)
    only = request.form.get("changes")
    try:
        if only:  # "Send only the changes" of the preview just shown: those rows, selected
            row_ids = pushes.changed_rows(workspace, current_user, table, provider, only)
            run = pushes.start_push(workspace, current_user, table, provider, scope="selected", row_ids=row_ids)
        else:
            run = pushes.start_push(workspace, current_user, table, provider, **_scope_args())
    except MorketError as exc:
        db.session.rollback()
        flash(exc.message, "error")
        return redirect(url_for("crm.push_page", slug=workspace.slug, table_id=table_id, provider=provider), code=303)
    db.session.commit()
    flash(f"Push started: {run.total:,} rows" + (" (only the changes)." if only else "."), "success")
    return redirect(url_for("crm.push_page", slug=workspace.slug, table_id=table_id, provider=provider), code=303)


@bp.get("/w/<slug>/crm/pushes/<int:push_id>")
@workspace_page("crm.view")
def push_progress(workspace: Workspace, membership: Member, push_id: int) -> ResponseReturnValue:
    run = pushes.get_push_or_404(workspace, push_id)
    return render_template("crm/_push_progress.html", workspace=workspace, run=pushes.progress(run),
                           can_use=can(membership.role, "crm.use"))  # fmt: skip


@bp.post("/w/<slug>/crm/pushes/<int:push_id>/cancel")
@workspace_page("crm.use")
def cancel_push(workspace: Workspace, membership: Member, push_id: int) -> ResponseReturnValue:
    run = pushes.get_push_or_404(workspace, push_id)
    try:
        run = pushes.cancel_push(workspace, current_user, run)
    except MorketError as exc:
        db.session.rollback()
        flash(exc.message, "error")
    else:
        db.session.commit()
    return render_template("crm/_push_progress.html", workspace=workspace, run=pushes.progress(run),
                           can_use=can(membership.role, "crm.use"))  # fmt: skip
