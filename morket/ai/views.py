"""Pages of ai: the AI models settings page (a workspace's model endpoints, add, test, delete) and the
grid's "describe the rows you want" box (natural language to a view's filters, shown as editable
chips, then applied to the view)."""

from __future__ import annotations

from flask import Response, current_app, flash, make_response, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue
from flask_login import current_user

from morket.ai import bp, nl_filter, service
from morket.ai.executor import DEFAULT_RPM, DEFAULT_TPM
from morket.ai.forms import CreateEndpointForm
from morket.core.errors import MorketError, ValidationFailed
from morket.core.forms import show_error_on_form
from morket.core.htmx import render_page_or_fragment, wants_fragment
from morket.core.roles import can
from morket.core.tenancy import workspace_page
from morket.core.types import Member, Workspace
from morket.extensions import db
from morket.tables import service as tables


def _page(
    workspace: Workspace, membership: Member, form: CreateEndpointForm | None = None, status: int = 200
) -> Response:
    if form is None:
        form = CreateEndpointForm(formdata=None)
    resp = render_page_or_fragment(
        "ai/endpoints.html",
        status,
        workspace=workspace,
        membership=membership,
        form=form,
        endpoints=service.list_endpoints(workspace),
        platform_models=service.platform_models(),
        platform_name=service.PLATFORM_NAME,
        kind_labels=service.KIND_LABELS,
        can_manage=can(membership.role, "ai.manage"),
        default_rpm=int(current_app.config["MORKET"].get("AI_REQUESTS_PER_MINUTE") or DEFAULT_RPM),
        default_tpm=int(current_app.config["MORKET"].get("AI_TOKENS_PER_MINUTE") or DEFAULT_TPM),
    )
    # A page that received a secret must never be kept in a cache or replayed from history.
    resp.headers["Cache-Control"] = "no-store"
    return resp


@bp.get("/w/<slug>/ai-models")
@workspace_page("ai.view")
def endpoints(workspace: Workspace, membership: Member) -> Response:
    return _page(workspace, membership)


@bp.post("/w/<slug>/ai-models")
@workspace_page("ai.manage")
def create(workspace: Workspace, membership: Member) -> ResponseReturnValue:
    form = CreateEndpointForm()
    if not form.validate_on_submit():
        return _page(workspace, membership, form, 422)
    try:
        endpoint = service.create_endpoint(
            workspace, current_user, name=form.name.data, kind=form.kind.data, base_url=form.base_url.data or None,
            api_key=form.api_key.data, model=form.model.data, models=form.models.data or None,
        )  # fmt: skip
    except MorketError as exc:
        db.session.rollback()
        show_error_on_form(form, exc)
        return _page(workspace, membership, form, exc.status)
    db.session.commit()
    flash(f"Saved the model endpoint {endpoint.name} (key {endpoint.masked}). Its answers cost no credits.", "success")
    return redirect(url_for("ai.endpoints", slug=workspace.slug), code=303)


@bp.post("/w/<slug>/ai-models/<int:endpoint_id>/test")
@workspace_page("ai.manage")
def test(workspace: Workspace, membership: Member, endpoint_id: int) -> ResponseReturnValue:
    endpoint = service.get_endpoint_or_404(workspace, endpoint_id)
    result = service.probe_endpoint(workspace, current_user, endpoint_id)
    db.session.commit()
    if wants_fragment():
        html = render_template("ai/_probe.html", endpoint=endpoint, result=result)
        return Response(html, mimetype="text/html", headers={"Cache-Control": "no-store"})
    flash(f"{endpoint.name}: {result.message}", "success" if result.ok else "error")
    return redirect(url_for("ai.endpoints", slug=workspace.slug), code=303)


@bp.post("/w/<slug>/ai-models/<int:endpoint_id>/limits")
@workspace_page("ai.manage")
def limits(workspace: Workspace, membership: Member, endpoint_id: int) -> ResponseReturnValue:
    """Save the requests and tokens a minute AI runs may send to an endpoint (empty: the defaults)."""
    endpoint = service.get_endpoint_or_404(workspace, endpoint_id)
    try:
        service.set_limits(workspace, current_user, endpoint_id,
                           requests_per_minute=request.form.get("requests_per_minute"),
                           tokens_per_minute=request.form.get("tokens_per_minute"))  # fmt: skip
    except MorketError as exc:
        db.session.rollback()
        flash(f"{endpoint.name}: {exc.message}", "error")
        resp = _page(workspace, membership, status=exc.status)
        return resp
    db.session.commit()
    flash(f"Saved the limits of {endpoint.name}.", "success")
    return redirect(url_for("ai.endpoints", slug=workspace.slug) + f"#endpoint-{endpoint_id}", code=303)


@bp.post("/w/<slug>/ai-models/<int:endpoint_id>/delete")
@workspace_page("ai.manage")
def delete(workspace: Workspace, membership: Member, endpoint_id: int) -> ResponseReturnValue:
    endpoint = service.get_endpoint_or_404(workspace, endpoint_id)
    name = endpoint.name
    service.delete_endpoint(workspace, current_user, endpoint_id)
    db.session.commit()
    flash(f"Deleted the model endpoint {name}. AI columns using it stop reaching it.", "success")
    return redirect(url_for("ai.endpoints", slug=workspace.slug), code=303)


# --- natural language to filters -------------------------------------------------------------------


def _chips_fragment(workspace: Workspace, table, view, *, status: int = 200, **context) -> Response:
    columns = nl_filter.filterable(table)
    html = render_template(
        "ai/_nl_filter_chips.html",
        workspace=workspace,
        table=table,
        view=view,
        columns=columns,
        operators={
            c.id: [(o, nl_filter.OPERATOR_LABELS.get(o, o)) for o in nl_filter.OPERATORS[c.type]] for c in columns
        },
        **context,
    )
    return Response(html, status=status, mimetype="text/html", headers={"Cache-Control": "no-store"})


@bp.post("/w/<slug>/tables/<int:table_id>/views/<int:view_id>/ask")
@workspace_page("tables.edit")
def ask_filters(workspace: Workspace, membership: Member, table_id: int, view_id: int) -> ResponseReturnValue:
    """Turn the box's description into filter chips (not applied yet)."""
    table = tables.get_table_or_404(workspace, table_id)
    view = tables.get_view_or_404(workspace, table, view_id)
    phrase = request.form.get("text", "")
    try:
        result = nl_filter.translate(workspace, table, phrase)
    except MorketError as exc:
        db.session.rollback()
        if not wants_fragment():
            flash(exc.message, "error")
            return redirect(url_for("tables.grid", slug=workspace.slug, table_id=table.id, view=view.id), code=303)
        return _chips_fragment(workspace, table, view, status=exc.status, error=exc.message, phrase=phrase)
    if not wants_fragment():
        flash("Suggested filters: " + "; ".join(f"{c.column} {c.label} {c.value_text}".strip() for c in result.chips))
        return redirect(url_for("tables.grid", slug=workspace.slug, table_id=table.id, view=view.id), code=303)
    return _chips_fragment(workspace, table, view, result=result, op=result.filters.get("op", "and"), phrase=phrase,
                           chips=result.chips)  # fmt: skip


@bp.post("/w/<slug>/tables/<int:table_id>/views/<int:view_id>/ask/apply")
@workspace_page("tables.edit")
def apply_filters(workspace: Workspace, membership: Member, table_id: int, view_id: int) -> ResponseReturnValue:
    """Replace the view's filters with the (possibly edited) chips."""
    table = tables.get_table_or_404(workspace, table_id, lock="share")
    view = tables.get_view_or_404(workspace, table, view_id)
    form = request.form
    filters = nl_filter.filters_from_form(
        form.get("f_op", "and"), form.getlist("f_col"), form.getlist("f_operator"), form.getlist("f_value")
    )
    try:
        if not filters:
            raise ValidationFailed("Keep at least one condition, or close the suggestion.")
        tables.update_view(workspace, current_user, table, view, filters=filters)
    except MorketError as exc:
        db.session.rollback()
        table = tables.get_table_or_404(workspace, table_id)
        view = tables.get_view_or_404(workspace, table, view_id)
        edited = nl_filter.chips_from_form(filters, nl_filter.filterable(table))
        op = filters.get("op", "and") if filters else "and"
        return _chips_fragment(workspace, table, view, status=exc.status, error=exc.message, chips=edited, op=op,
                               phrase=form.get("phrase", ""))  # fmt: skip
    db.session.commit()
    location = url_for("tables.grid", slug=workspace.slug, table_id=table_id, view=view_id)
    if request.headers.get("HX-Request") == "true":
        resp = make_response("", 204)
        resp.headers["HX-Redirect"] = location
        return resp
    return redirect(location, code=303)
