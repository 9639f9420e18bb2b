"""Workspaces, members, roles, invitations and API keys, under /w/<slug>/."""

from flask import Blueprint, Flask

bp = Blueprint("workspaces", __name__)


def register(app: Flask) -> None:
    from morket.core.tenancy import register_workspaces
    from morket.workspaces import views  # noqa: F401
    from morket.workspaces.members import membership_statement
    from morket.workspaces.models import Membership, Workspace

    register_workspaces(
        workspace_model=Workspace, membership_model=Membership, membership_statement=membership_statement()
    )
    app.register_blueprint(bp)
