"""The credentials page: a workspace's own provider keys, masked, with add and delete (managers only)."""

from __future__ import annotations

from flask import Response, flash, redirect, url_for
from flask.typing import ResponseReturnValue
from flask_login import current_user

from morket.core.errors import MorketError
from morket.core.forms import show_error_on_form
from morket.core.htmx import render_page_or_fragment
from morket.core.roles import can
from morket.core.tenancy import workspace_page
from morket.core.types import Member, Workspace
from morket.credentials import bp, service
from morket.credentials.forms import CreateCredentialForm
from morket.extensions import db


def _page(
    workspace: Workspace, membership: Member, form: CreateCredentialForm | None = None, status: int = 200
) -> Response:
    choices = service.provider_choices()
    if form is None:
        form = CreateCredentialForm(formdata=None)
    form.provider.choices = choices
    resp = render_page_or_fragment(
        "credentials/index.html",
        status,
        workspace=workspace,
        membership=membership,
        form=form,
        credentials=service.list_credentials(workspace),
        provider_labels=dict(choices),
        can_manage=can(membership.role, "credentials.manage"),
    )
    # A page that received a secret must never be kept in a cache or replayed from history.
    resp.headers["Cache-Control"] = "no-store"
    return resp


@bp.get("/w/<slug>/credentials")
@workspace_page("credentials.view")
def index(workspace: Workspace, membership: Member) -> Response:
    return _page(workspace, membership)


@bp.post("/w/<slug>/credentials")
@workspace_page("credentials.manage")
def create(workspace: Workspace, membership: Member) -> ResponseReturnValue:
    form = CreateCredentialForm()
    form.provider.choices = service.provider_choices()
    if not form.validate_on_submit():
        return _page(workspace, membership, form, 422)
    try:
        credential = service.create_credential(
            workspace, current_user, form.provider.data, form.secret.data, label=form.label.data or None
        )
    except MorketError as exc:
        db.session.rollback()
        show_error_on_form(form, exc)
        return _page(workspace, membership, form, exc.status)
    db.session.commit()
    flash(
        f"Saved the {service.provider_label(credential.provider)} key {credential.masked}. "
        "Runs with this provider now use it and are not charged credits.",
        "success",
    )
    return redirect(url_for("credentials.index", slug=workspace.slug), code=303)


@bp.post("/w/<slug>/credentials/<int:credential_id>/delete")
@workspace_page("credentials.manage")
def delete(workspace: Workspace, membership: Member, credential_id: int) -> ResponseReturnValue:
    credential = service.get_credential_or_404(workspace, credential_id)
    provider, masked = credential.provider, credential.masked
    service.delete_credential(workspace, current_user, credential_id)
    db.session.commit()
    flash(
        f"Deleted the {service.provider_label(provider)} key {masked}. Runs with this provider no longer use it; "
        "where Morket has its own key, runs use that and charge credits.",
        "success",
    )
    return redirect(url_for("credentials.index", slug=workspace.slug), code=303)
