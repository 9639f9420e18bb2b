"""API resources of the caller's workspace: the workspace, members, invitations, API keys.

The workspace always comes from the token or key, never from the URL.
"""

from __future__ import annotations

from morket.api import schemas
from morket.api.routing import Principal, api_route


@api_route("/me", "GET", summary="Who is calling, in which workspace", tag="Account", response=schemas.MeOut)
def get_me(principal: Principal) -> schemas.MeOut:
    """The user or API key behind the credential, its workspace and its role there."""
    return schemas.MeOut(
        principal=principal.kind,
        user=schemas.UserOut.model_validate(principal.user) if principal.user is not None else None,
        api_key=schemas.ApiKeyOut.model_validate(principal.api_key) if principal.api_key is not None else None,
        workspace=schemas.WorkspaceOut.model_validate(principal.workspace),
        role=principal.role,
    )


@api_route(
    "/workspace",
    "GET",
    summary="The workspace of the credential",
    tag="Workspace",
    permission="workspace.view",
    response=schemas.WorkspaceOut,
)
def get_workspace(principal: Principal) -> schemas.WorkspaceOut:
    """The workspace this token or key is scoped to."""
    return schemas.WorkspaceOut.model_validate(principal.workspace)
