"""The credentials page: a workspace's own provider keys, masked, with add and delete (managers only)."""

from __future__ import annotations

from flask import flash, make_response, redirect, render_template, url_for
from flask_login import current_user

from morket.core.errors import MorketError
from morket.core.roles import can
from morket.core.tenancy import workspace_page
from morket.credentials import bp, service
from morket.credentials.forms import CreateCredentialForm
from morket.extensions import db
from morket.workspaces.forms import ROLE_LABELS


def _apply_error(form: CreateCredentialForm, exc: MorketError) -> None:
    placed = False
    for name, messages in exc.fields.items():
        field = getattr(form, name, None)
        if field is not None:
            field.errors = list(field.errors) + messages
            placed = True
    if not placed:
        form.form_errors.append(exc.message)


def _page(workspace, membership, form: CreateCredentialForm | None = None, status: int = 200):  # noqa: ANN001
    choices = service.provider_choices()
    if form is None:
        form = CreateCredentialForm(formdata=None)
    form.provider.choices = choices
    resp = make_response(
        render_template(
            "credentials/index.html",
            workspace=workspace,
            membership=membership,
            form=form,
            credentials=service.list_credentials(workspace),
            provider_labels=dict(choices),
            can_manage=can(membership.role, "credentials.manage"),
            role_labels=ROLE_LABELS,
            can=can,
        ),
        status,
    )
    # A page that received a secret must never be kept in a cache or replayed from history.
    resp.headers["Cache-Control"] = "no-store"
    resp.vary.add("HX-Request")
    return resp


@bp.get("/w/<slug>/credentials")
@workspace_page("credentials.view")
def index(workspace, membership):  # noqa: ANN001, ANN201
    return _page(workspace, membership)


@bp.post("/w/<slug>/credentials")
@workspace_page("credentials.manage")
def create(workspace, membership):  # noqa: ANN001, ANN201
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
        _apply_error(form, exc)
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
def delete(workspace, membership, credential_id: int):  # noqa: ANN001, ANN201
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
