"""The webhooks page: endpoints, their secret (shown once), test events, deliveries and redelivery (managers)."""

from __future__ import annotations

from flask import Response, flash, redirect, url_for
from flask.typing import ResponseReturnValue
from flask_login import current_user

from morket.core.errors import MorketError
from morket.core.forms import show_error_on_form
from morket.core.htmx import render_page_or_fragment
from morket.core.tenancy import workspace_page
from morket.core.types import Member, Workspace
from morket.extensions import db, limiter
from morket.webhooks import bp, service
from morket.webhooks.forms import EndpointForm
from morket.webhooks.models import WebhookEndpoint


def _no_store(resp: Response) -> Response:
    # A page that may show a secret must never be kept in a cache or replayed from history.
    resp.headers["Cache-Control"] = "no-store"
    return resp


def _index(
    workspace: Workspace, membership: Member, form: EndpointForm | None = None, status: int = 200, **extra
) -> Response:
    return _no_store(
        render_page_or_fragment(
            "webhooks/index.html",
            status,
            workspace=workspace,
            membership=membership,
            form=form or EndpointForm(formdata=None),
            endpoints=service.list_endpoints(workspace),
            event_labels=service.EVENT_TYPES,
            **extra,
        )
    )


def _detail(
    workspace: Workspace,
    membership: Member,
    endpoint: WebhookEndpoint,
    form: EndpointForm | None = None,
    status: int = 200,
    **extra,
) -> Response:
    if form is None:
        form = EndpointForm(formdata=None, obj=endpoint)
    deliveries = service.list_deliveries(workspace, endpoint)
    return _no_store(
        render_page_or_fragment(
            "webhooks/endpoint.html",
            status,
            workspace=workspace,
            membership=membership,
            endpoint=endpoint,
            form=form,
            deliveries=deliveries,
            attempts=service.list_attempts(workspace, [d.id for d, _ in deliveries]),
            event_labels={**service.EVENT_TYPES, service.TEST_EVENT: "Test event"},
            **extra,
        )
    )


@bp.get("/w/<slug>/webhooks")
@workspace_page("webhooks.view")
def index(workspace: Workspace, membership: Member) -> Response:
    return _index(workspace, membership)


@bp.post("/w/<slug>/webhooks")
@workspace_page("webhooks.manage")
def create(workspace: Workspace, membership: Member) -> ResponseReturnValue:
    form = EndpointForm()
    if not form.validate_on_submit():
        return _index(workspace, membership, form, 422)
    try:
        endpoint, secret = service.create_endpoint(
            workspace,
            current_user,
            form.url.data,
            form.event_types.data,
            description=form.description.data,
            enabled=form.enabled.data,
        )
    except MorketError as exc:
        db.session.rollback()
        show_error_on_form(form, exc)
        return _index(workspace, membership, form, exc.status)
    db.session.commit()
    flash(f"Added the endpoint {endpoint.url}. Copy its signing secret now: it is shown only once.", "success")
    return _detail(workspace, membership, endpoint, new_secret=secret, created=True)


@bp.get("/w/<slug>/webhooks/<int:endpoint_id>")
@workspace_page("webhooks.view")
def endpoint(workspace: Workspace, membership: Member, endpoint_id: int) -> Response:
    return _detail(workspace, membership, service.get_endpoint_or_404(workspace, endpoint_id))


@bp.post("/w/<slug>/webhooks/<int:endpoint_id>")
@workspace_page("webhooks.manage")
def update(workspace: Workspace, membership: Member, endpoint_id: int) -> ResponseReturnValue:
    found = service.get_endpoint_or_404(workspace, endpoint_id)
    form = EndpointForm()
    if not form.validate_on_submit():
        return _detail(workspace, membership, found, form, 422)
    try:
        service.update_endpoint(
            workspace,
            current_user,
            found,
            url=form.url.data,
            event_types=form.event_types.data,
            description=form.description.data or "",
            enabled=form.enabled.data,
        )
    except MorketError as exc:
        db.session.rollback()
        show_error_on_form(form, exc)
        found = service.get_endpoint_or_404(workspace, endpoint_id)
        return _detail(workspace, membership, found, form, exc.status)
    db.session.commit()
    flash("Saved the endpoint.", "success")
    return redirect(url_for("webhooks.endpoint", slug=workspace.slug, endpoint_id=endpoint_id), code=303)


@bp.post("/w/<slug>/webhooks/<int:endpoint_id>/delete")
@workspace_page("webhooks.manage")
def delete(workspace: Workspace, membership: Member, endpoint_id: int) -> ResponseReturnValue:
    found = service.get_endpoint_or_404(workspace, endpoint_id)
    url = found.url
    service.delete_endpoint(workspace, current_user, found)
    db.session.commit()
    flash(f"Deleted the endpoint {url}. Events are no longer sent there.", "success")
    return redirect(url_for("webhooks.index", slug=workspace.slug), code=303)


@bp.post("/w/<slug>/webhooks/<int:endpoint_id>/rotate")
@workspace_page("webhooks.manage")
def rotate(workspace: Workspace, membership: Member, endpoint_id: int) -> ResponseReturnValue:
    found = service.get_endpoint_or_404(workspace, endpoint_id)
    secret = service.rotate_secret(workspace, current_user, found)
    db.session.commit()
    return _detail(workspace, membership, found, new_secret=secret, rotated=True)


@bp.post("/w/<slug>/webhooks/<int:endpoint_id>/test")
@workspace_page("webhooks.manage")
@limiter.limit(service.SEND_LIMIT)
def send_test(workspace: Workspace, membership: Member, endpoint_id: int) -> ResponseReturnValue:
    found = service.get_endpoint_or_404(workspace, endpoint_id)
    try:
        service.send_test_event(workspace, current_user, found)
    except MorketError as exc:
        db.session.rollback()
        flash(exc.message, "error")
    else:
        db.session.commit()
        flash("Test event queued. Its delivery appears below within a few seconds.", "success")
    return redirect(url_for("webhooks.endpoint", slug=workspace.slug, endpoint_id=endpoint_id), code=303)


@bp.post("/w/<slug>/webhooks/deliveries/<int:delivery_id>/redeliver")
@workspace_page("webhooks.manage")
@limiter.limit(service.SEND_LIMIT)
def redeliver(workspace: Workspace, membership: Member, delivery_id: int) -> ResponseReturnValue:
    found = service.get_delivery_or_404(workspace, delivery_id)
    service.redeliver(workspace, current_user, found)
    db.session.commit()
    flash("Delivery queued again, with the same webhook-id.", "success")
    return redirect(url_for("webhooks.endpoint", slug=workspace.slug, endpoint_id=found.endpoint_id), code=303)
