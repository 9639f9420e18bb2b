"""API resources of the caller's workspace: the workspace, members, invitations, API keys.

The workspace always comes from the token or key, never from the URL.
"""

from __future__ import annotations

from morket.api import schemas
from morket.api.routing import Principal, api_route, user_actor
from morket.extensions import db
from morket.workspaces import service


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


@api_route(
    "/workspace",
    "PATCH",
    summary="Rename the workspace",
    tag="Workspace",
    permission="workspace.rename",
    body=schemas.WorkspaceUpdate,
    response=schemas.WorkspaceOut,
)
def update_workspace(principal: Principal, body: schemas.WorkspaceUpdate) -> schemas.WorkspaceOut:
    """Rename the workspace; its slug stays the same. Needs a user token (admin or owner)."""
    workspace = service.rename_workspace(principal.workspace, user_actor(principal), body.name)
    db.session.commit()
    return schemas.WorkspaceOut.model_validate(workspace)


@api_route(
    "/members",
    "GET",
    summary="List the workspace's members",
    tag="Members",
    permission="members.view",
    response=list[schemas.MemberOut],
)
def list_members(principal: Principal) -> list[schemas.MemberOut]:
    """Every member with their role, owners first."""
    return [schemas.MemberOut.model_validate(m) for m in service.list_members(principal.workspace)]


@api_route(
    "/members/<int:member_id>",
    "PATCH",
    summary="Change a member's role",
    tag="Members",
    permission="members.change_role",
    body=schemas.MemberUpdate,
    response=schemas.MemberOut,
)
def update_member(principal: Principal, body: schemas.MemberUpdate, member_id: int) -> schemas.MemberOut:
    """Give a member another role; only owners grant or change the owner and admin roles."""
    membership = service.change_member_role(principal.workspace, user_actor(principal), member_id, body.role)
    db.session.commit()
    return schemas.MemberOut.model_validate(membership)


@api_route(
    "/members/<int:member_id>",
    "DELETE",
    summary="Remove a member",
    tag="Members",
    permission="members.remove",
    response=schemas.DeletedOut,
)
def delete_member(principal: Principal, member_id: int) -> schemas.DeletedOut:
    """Remove a member from the workspace; their tokens for it stop working at once."""
    service.remove_member(principal.workspace, user_actor(principal), member_id)
    db.session.commit()
    return schemas.DeletedOut(id=member_id)


@api_route(
    "/invitations",
    "GET",
    summary="List pending invitations",
    tag="Members",
    permission="members.invite",
    response=list[schemas.InvitationOut],
)
def list_invitations(principal: Principal) -> list[schemas.InvitationOut]:
    """Invitations not yet accepted or revoked, newest first (expired ones included)."""
    return [schemas.InvitationOut.model_validate(i) for i in service.list_pending_invitations(principal.workspace)]


@api_route(
    "/invitations",
    "POST",
    summary="Invite someone by email",
    tag="Members",
    permission="members.invite",
    body=schemas.InvitationCreate,
    response=schemas.InvitationOut,
    status=201,
)
def create_invitation(principal: Principal, body: schemas.InvitationCreate) -> schemas.InvitationOut:
    """Email an invitation link valid for 7 days; a new one to the same address replaces the pending one."""
    invitation = service.invite_member(principal.workspace, user_actor(principal), str(body.email), body.role)
    db.session.commit()
    return schemas.InvitationOut.model_validate(invitation)


@api_route(
    "/api-keys",
    "GET",
    summary="List the workspace's API keys",
    tag="API keys",
    permission="api_keys.view",
    response=list[schemas.ApiKeyOut],
)
def list_api_keys(principal: Principal) -> list[schemas.ApiKeyOut]:
    """Active keys first, newest first; secrets are never shown again."""
    return [schemas.ApiKeyOut.model_validate(k) for k in service.list_api_keys(principal.workspace)]


@api_route(
    "/api-keys",
    "POST",
    summary="Create an API key",
    tag="API keys",
    permission="api_keys.manage",
    body=schemas.ApiKeyCreate,
    response=schemas.ApiKeyCreatedOut,
    status=201,
)
def create_api_key(principal: Principal, body: schemas.ApiKeyCreate) -> schemas.ApiKeyCreatedOut:
    """Create a key; the response holds its secret, which is shown this once only."""
    key, plaintext = service.create_api_key(principal.workspace, user_actor(principal), name=body.name, role=body.role)
    db.session.commit()
    return schemas.ApiKeyCreatedOut.model_validate(
        {**schemas.ApiKeyOut.model_validate(key).model_dump(), "key": plaintext}
    )


@api_route(
    "/api-keys/<int:key_id>",
    "DELETE",
    summary="Revoke an API key",
    tag="API keys",
    permission="api_keys.manage",
    response=schemas.ApiKeyOut,
)
def revoke_api_key(principal: Principal, key_id: int) -> schemas.ApiKeyOut:
    """Revoke a key; requests that use it are refused from now on."""
    key = service.revoke_api_key(principal.workspace, user_actor(principal), key_id)
    db.session.commit()
    return schemas.ApiKeyOut.model_validate(key)
