"""Workspace pages: list and create, dashboard, settings, members, invitations and API keys."""

from __future__ import annotations

from flask import current_app, flash, g, make_response, redirect, request, url_for
from flask.blueprints import BlueprintSetupState
from flask_login import current_user, login_required

from morket.accounts.models import User
from morket.core.errors import MorketError, ValidationFailed
from morket.core.forms import show_error_on_form
from morket.core.htmx import add_toast, render_page_or_fragment, wants_fragment
from morket.core.roles import can, outranks_or_equals
from morket.core.tenancy import workspace_page
from morket.core.web import safe_next
from morket.extensions import db
from morket.workspaces import bp, first_run, service
from morket.workspaces.forms import (
    ROLE_HELP,
    ROLE_LABELS,
    ChangeRoleForm,
    CreateApiKeyForm,
    CreateWorkspaceForm,
    DeleteWorkspaceForm,
    InviteMemberForm,
    RenameWorkspaceForm,
    role_choices,
)
from morket.workspaces.models import ApiKey, Membership, Workspace
from morket.workspaces.overview import overview_context


@bp.record
def _role_labels(state: BlueprintSetupState) -> None:
    # Every workspace page's header names the member's role (templates/workspaces/_layout.html),
    # whichever domain renders it.
    state.app.jinja_env.globals["role_labels"] = ROLE_LABELS


# Workspaces -----------------------------------------------------------------------------------


def _home(form: CreateWorkspaceForm, status: int = 200):
    return render_page_or_fragment(
        "workspaces/home.html",
        status,
        form=form,
        rows=service.list_workspaces_for(current_user),
        invitations=my_invitations(),
    )


@bp.get("/w")
@login_required
def home():
    return _home(CreateWorkspaceForm())


@bp.post("/w")
@login_required
def create():
    form = CreateWorkspaceForm()
    if not form.validate_on_submit():
        return _home(form, 422)
    try:
        workspace = service.create_workspace(current_user, form.name.data)
    except MorketError as exc:
        db.session.rollback()
        show_error_on_form(form, exc)
        return _home(form, exc.status)
    db.session.commit()
    flash(f"{workspace.name} is ready. Invite your team or start building.", "success")
    return redirect(url_for("workspaces.dashboard", slug=workspace.slug))


@bp.get("/w/<slug>/")
@workspace_page("workspace.view")
def dashboard(workspace: Workspace, membership: Membership):
    members = service.list_members(workspace)
    steps = first_run.checklist(workspace) if can(membership.role, "tables.manage") else []
    return render_page_or_fragment(
        "workspaces/dashboard.html",
        workspace=workspace,
        membership=membership,
        members=members,
        steps=steps,
        sandbox=current_app.config["MORKET"]["SANDBOX_MODE"],
        **overview_context(workspace, membership),
    )


def _settings(
    workspace: Workspace,
    membership: Membership,
    rename: RenameWorkspaceForm | None = None,
    delete: DeleteWorkspaceForm | None = None,
    status: int = 200,
):
    rename = rename or RenameWorkspaceForm(formdata=None, name=workspace.name)
    delete = delete or DeleteWorkspaceForm(formdata=None)
    return render_page_or_fragment(
        "workspaces/settings.html",
        status,
        workspace=workspace,
        membership=membership,
        rename_form=rename,
        delete_form=delete,
        can_delete=can(membership.role, "workspace.delete"),
    )


@bp.get("/w/<slug>/settings")
@workspace_page("workspace.rename")
def settings(workspace: Workspace, membership: Membership):
    return _settings(workspace, membership)


@bp.post("/w/<slug>/settings")
@workspace_page("workspace.rename")
def rename(workspace: Workspace, membership: Membership):
    form = RenameWorkspaceForm()
    if not form.validate_on_submit():
        return _settings(workspace, membership, rename=form, status=422)
    try:
        service.rename_workspace(workspace, current_user, form.name.data)
    except MorketError as exc:
        db.session.rollback()
        show_error_on_form(form, exc)
        return _settings(workspace, membership, rename=form, status=exc.status)
    db.session.commit()
    flash("Workspace renamed.", "success")
    return redirect(url_for("workspaces.settings", slug=workspace.slug))


@bp.post("/w/<slug>/settings/delete")
@workspace_page("workspace.delete")
def delete(workspace: Workspace, membership: Membership):
    form = DeleteWorkspaceForm()
    if form.validate_on_submit() and form.confirm_name.data != workspace.name:
        form.confirm_name.errors = [f"Type {workspace.name} exactly to confirm."]
    if form.errors:
        return _settings(workspace, membership, delete=form, status=422)
    name = workspace.name
    service.delete_workspace(workspace, current_user)
    db.session.commit()
    flash(f"{name} and everything in it was deleted.", "success")
    return redirect(url_for("workspaces.home"))


# Members --------------------------------------------------------------------------------------


def _row_context(workspace: Workspace, membership: Membership) -> dict:
    return {
        "workspace": workspace,
        "membership": membership,
        "assignable_roles": role_choices(membership.role),
        "can_change_role": can(membership.role, "members.change_role"),
        "can_remove": can(membership.role, "members.remove"),
        "can_transfer": can(membership.role, "workspace.transfer"),
        "outranks": outranks_or_equals,
    }


def _members_page(
    workspace: Workspace, membership: Membership, invite_form: InviteMemberForm | None = None, status: int = 200
):
    if invite_form is None:
        invite_form = InviteMemberForm(formdata=None)
    invite_form.role.choices = role_choices(membership.role)
    can_invite = can(membership.role, "members.invite")
    return render_page_or_fragment(
        "workspaces/members.html",
        status,
        members=service.list_members(workspace),
        invitations=service.list_pending_invitations(workspace) if can_invite else [],
        invite_form=invite_form,
        can_invite=can_invite,
        role_help=ROLE_HELP,
        **_row_context(workspace, membership),
    )


def _member_row(workspace: Workspace, membership: Membership, target: Membership, status: int = 200, error: str = ""):
    return render_page_or_fragment(
        "workspaces/_member_row.html", status, m=target, row_error=error, **_row_context(workspace, membership)
    )


@bp.get("/w/<slug>/members")
@workspace_page("members.view")
def members(workspace: Workspace, membership: Membership):
    return _members_page(workspace, membership)


@bp.post("/w/<slug>/members")
@workspace_page("members.invite")
def invite(workspace: Workspace, membership: Membership):
    form = InviteMemberForm()
    form.role.choices = role_choices(membership.role)
    if not form.validate_on_submit():
        return _members_page(workspace, membership, form, 422)
    try:
        invitation = service.invite_member(workspace, current_user, form.email.data, form.role.data)
    except MorketError as exc:
        db.session.rollback()
        show_error_on_form(form, exc)
        return _members_page(workspace, membership, form, exc.status)
    db.session.commit()
    flash(f"Invitation sent to {invitation.email}. The link works for 7 days.", "success")
    return redirect(url_for("workspaces.members", slug=workspace.slug))


def _after_member_change(
    workspace: Workspace, membership: Membership, target: Membership | None, exc: MorketError | None, done: str
):
    """Answer a row action: the row fragment for htmx, else a redirect with a message."""
    if exc is not None:
        db.session.rollback()
        if wants_fragment():
            return _member_row(workspace, membership, target, exc.status, exc.message)
        flash(exc.message, "error")
        return redirect(url_for("workspaces.members", slug=workspace.slug))
    db.session.commit()
    if wants_fragment():
        resp = _member_row(workspace, membership, target) if target is not None else _render_empty()
        return add_toast(resp, done)
    flash(done, "success")
    return redirect(url_for("workspaces.members", slug=workspace.slug))


def _render_empty():
    resp = make_response("", 200)
    resp.vary.add("HX-Request")
    return resp


@bp.post("/w/<slug>/members/<int:membership_id>/role")
@workspace_page("members.change_role")
def change_role(workspace: Workspace, membership: Membership, membership_id: int):
    target = service.get_member_or_404(workspace, membership_id)
    form = ChangeRoleForm()
    form.role.choices = list(ROLE_LABELS.items())
    if not form.validate_on_submit():
        invalid = ValidationFailed("Choose one of the listed roles.")
        return _after_member_change(workspace, membership, target, invalid, "")
    try:
        service.change_member_role(workspace, current_user, membership_id, form.role.data)
    except MorketError as exc:
        return _after_member_change(workspace, membership, target, exc, "")
    return _after_member_change(
        workspace, membership, target, None, f"{target.user.email} is now {ROLE_LABELS[target.role].lower()}."
    )


@bp.post("/w/<slug>/members/<int:membership_id>/remove")
@workspace_page("members.remove")
def remove(workspace: Workspace, membership: Membership, membership_id: int):
    target = service.get_member_or_404(workspace, membership_id)
    email = target.user.email
    try:
        service.remove_member(workspace, current_user, membership_id)
    except MorketError as exc:
        return _after_member_change(workspace, membership, target, exc, "")
    return _after_member_change(workspace, membership, None, None, f"{email} was removed from {workspace.name}.")


@bp.post("/w/<slug>/members/<int:membership_id>/transfer")
@workspace_page("workspace.transfer")
def transfer(workspace: Workspace, membership: Membership, membership_id: int):
    service.get_member_or_404(workspace, membership_id)
    try:
        target = service.transfer_ownership(workspace, current_user, membership_id)
    except MorketError as exc:
        db.session.rollback()
        flash(exc.message, "error")
    else:
        db.session.commit()
        flash(f"{target.user.email} now owns {workspace.name}. You are an admin.", "success")
    return redirect(url_for("workspaces.members", slug=workspace.slug))


@bp.post("/w/<slug>/leave")
@workspace_page("workspace.view")
def leave(workspace: Workspace, membership: Membership):
    try:
        service.leave_workspace(workspace, current_user)
    except MorketError as exc:
        db.session.rollback()
        flash(exc.message, "error")
        return redirect(url_for("workspaces.members", slug=workspace.slug))
    db.session.commit()
    flash(f"You left {workspace.name}.", "success")
    return redirect(url_for("workspaces.home"))


@bp.post("/w/<slug>/invitations/<int:invitation_id>/revoke")
@workspace_page("members.invite")
def revoke_invitation(workspace: Workspace, membership: Membership, invitation_id: int):
    service.get_invitation_or_404(workspace, invitation_id)
    try:
        invitation = service.revoke_invitation(workspace, current_user, invitation_id)
    except MorketError as exc:
        db.session.rollback()
        flash(exc.message, "error")
    else:
        db.session.commit()
        flash(f"The invitation to {invitation.email} was revoked; its link no longer works.", "success")
    return redirect(url_for("workspaces.members", slug=workspace.slug))


# Invitations (by link) ------------------------------------------------------------------------


@bp.get("/invite/<token>")
def invitation(token: str):
    try:
        found = service.load_invitation(token)
    except MorketError as exc:
        return render_page_or_fragment("workspaces/invitation.html", exc.status, error=exc.message, invitation=None)
    problem = ""
    if current_user.is_authenticated:
        try:
            service.check_invitee(found, current_user)
        except MorketError as exc:
            problem = exc.message
    return render_page_or_fragment(
        "workspaces/invitation.html",
        invitation=found,
        workspace=db.session.get(Workspace, found.workspace_id),
        inviter=db.session.get(User, found.invited_by_id) if found.invited_by_id else None,
        problem=problem,
        error="",
        login_url=url_for("accounts.login", next=safe_next(request.path)),
    )


@bp.post("/invite/<token>")
def accept_invitation(token: str):
    if not current_user.is_authenticated:
        return redirect(url_for("accounts.login", next=safe_next(request.path)))
    try:
        membership = service.accept_invitation(token, current_user)
    except MorketError as exc:
        db.session.rollback()
        return render_page_or_fragment("workspaces/invitation.html", exc.status, error=exc.message, invitation=None)
    db.session.commit()
    workspace = membership.workspace
    flash(f"Welcome to {workspace.name}. You joined as {ROLE_LABELS[membership.role].lower()}.", "success")
    return redirect(url_for("workspaces.dashboard", slug=workspace.slug))


# API keys -------------------------------------------------------------------------------------


def _api_keys_page(
    workspace: Workspace,
    membership: Membership,
    form: CreateApiKeyForm | None = None,
    status: int = 200,
    new_key: ApiKey | None = None,
    plaintext: str = "",
):
    if form is None:
        form = CreateApiKeyForm(formdata=None)
    form.role.choices = role_choices(membership.role)
    resp = render_page_or_fragment(
        "workspaces/api_keys.html",
        status,
        workspace=workspace,
        membership=membership,
        form=form,
        keys=service.list_api_keys(workspace),
        can_manage=can(membership.role, "api_keys.manage"),
        new_key=new_key,
        plaintext=plaintext,
        key_prefix=service.API_KEY_PREFIX,
    )
    # The page may carry a secret shown once: never keep it in a cache or the back-button history.
    resp.headers["Cache-Control"] = "no-store"
    return resp


@bp.get("/w/<slug>/api-keys")
@workspace_page("api_keys.view")
def api_keys(workspace: Workspace, membership: Membership):
    return _api_keys_page(workspace, membership)


@bp.post("/w/<slug>/api-keys")
@workspace_page("api_keys.manage")
def create_api_key(workspace: Workspace, membership: Membership):
    form = CreateApiKeyForm()
    form.role.choices = role_choices(membership.role)
    if not form.validate_on_submit():
        return _api_keys_page(workspace, membership, form, 422)
    try:
        key, plaintext = service.create_api_key(workspace, current_user, name=form.name.data, role=form.role.data)
    except MorketError as exc:
        db.session.rollback()
        show_error_on_form(form, exc)
        return _api_keys_page(workspace, membership, form, exc.status)
    db.session.commit()
    return _api_keys_page(workspace, membership, new_key=key, plaintext=plaintext)


@bp.post("/w/<slug>/api-keys/<int:key_id>/revoke")
@workspace_page("api_keys.manage")
def revoke_api_key(workspace: Workspace, membership: Membership, key_id: int):
    key = service.revoke_api_key(workspace, current_user, key_id)
    db.session.commit()
    flash(f"The key {key.name} was revoked. Requests using it are refused from now on.", "success")
    return redirect(url_for("workspaces.api_keys", slug=workspace.slug))


@bp.app_template_global("my_workspaces")
def my_workspaces() -> list:
    """Return the current user's (workspace, membership) pairs for the workspace switcher."""
    return service.list_workspaces_for(current_user) if current_user.is_authenticated else []


@bp.app_template_global("my_invitations")
def my_invitations() -> list:
    """Return the invitations waiting for the current user's address, for the shell and the workspaces page.

    Read once per request: the workspaces page lists them and the sidebar counts them.
    """
    if not current_user.is_authenticated:
        return []
    if "my_invitations" not in g:
        g.my_invitations = service.list_invitations_for(current_user)
    return g.my_invitations
