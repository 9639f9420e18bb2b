"""WTForms for the workspace pages; the services re-check every rule."""

from __future__ import annotations

from flask_wtf import FlaskForm
from wtforms import EmailField, SelectField, StringField
from wtforms.validators import DataRequired, Length

from morket.accounts.forms import EmailAddress
from morket.core.roles import ADMIN, BILLING_ADMIN, MEMBER, OWNER, VIEWER, outranks_or_equals
from morket.workspaces.service import NAME_MAX

ROLE_LABELS: dict[str, str] = {
    OWNER: "Owner",
    ADMIN: "Admin",
    MEMBER: "Member",
    VIEWER: "Viewer",
    BILLING_ADMIN: "Billing admin",
}
ROLE_HELP: dict[str, str] = {
    OWNER: "Everything, including deleting the workspace and transferring ownership.",
    ADMIN: "Manages members, API keys, credentials and settings.",
    MEMBER: "Builds tables and runs enrichments.",
    VIEWER: "Reads tables; changes nothing.",
    BILLING_ADMIN: "Sees billing and credits only.",
}


def _strip(value: object) -> object:
    return " ".join(value.split()) if isinstance(value, str) else value


def role_choices(actor_role: str) -> list[tuple[str, str]]:
    """Return the roles ``actor_role`` may hand out, as (value, label) pairs."""
    return [(role, label) for role, label in ROLE_LABELS.items() if outranks_or_equals(actor_role, role)]


def _name_field(label: str) -> StringField:
    return StringField(
        label,
        validators=[
            DataRequired(f"Enter a {label.lower()}."),
            Length(max=NAME_MAX, message=f"Use at most {NAME_MAX} characters."),
        ],
        filters=[_strip],
    )


class CreateWorkspaceForm(FlaskForm):
    name = _name_field("Workspace name")


class RenameWorkspaceForm(FlaskForm):
    name = _name_field("Workspace name")


class DeleteWorkspaceForm(FlaskForm):
    confirm_name = StringField(
        "Type the workspace name to confirm", validators=[DataRequired("Type the workspace name.")], filters=[_strip]
    )


class InviteMemberForm(FlaskForm):
    email = EmailField(
        "Email",
        validators=[
            DataRequired("Enter an email address."),
            Length(max=320, message="That email address is too long."),
            EmailAddress(),
        ],
        filters=[lambda value: value.strip().lower() if isinstance(value, str) else value],
    )
    role = SelectField("Role", default=MEMBER)


class ChangeRoleForm(FlaskForm):
    role = SelectField("Role")


class CreateApiKeyForm(FlaskForm):
    name = _name_field("Key name")
    role = SelectField("Role", default=MEMBER)
