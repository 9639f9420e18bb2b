"""Pages of ai: the AI models settings page (a workspace's model endpoints, add, test, delete)."""

from __future__ import annotations

from flask import Response, flash, redirect, render_template, url_for
from flask.typing import ResponseReturnValue
from flask_login import current_user

from morket.ai import bp, service
from morket.ai.forms import CreateEndpointForm
from morket.core.errors import MorketError
from morket.core.forms import show_error_on_form
from morket.core.htmx import render_page_or_fragment, wants_fragment
from morket.core.roles import can
from morket.core.tenancy import workspace_page
from morket.core.types import Member, Workspace
from morket.extensions import db


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


@bp.post("/w/<slug>/ai-models/<int:endpoint_id>/delete")
@workspace_page("ai.manage")
def delete(workspace: Workspace, membership: Member, endpoint_id: int) -> ResponseReturnValue:
    endpoint = service.get_endpoint_or_404(workspace, endpoint_id)
    name = endpoint.name
    service.delete_endpoint(workspace, current_user, endpoint_id)
    db.session.commit()
    flash(f"Deleted the model endpoint {name}. AI columns using it stop reaching it.", "success")
    return redirect(url_for("ai.endpoints", slug=workspace.slug), code=303)
