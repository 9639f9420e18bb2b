"""Provider credentials over the JSON API: store a key, list them masked, delete one.

Listing takes a manager's token or a manager-role API key; storing and deleting a key need a
person's access token, so that every change of a secret is audited to someone (an API key must
not be able to swap the keys the workspace's runs use).
"""

from __future__ import annotations

from datetime import datetime

from pydantic import Field

from morket.api.routing import Principal, api_route, user_actor
from morket.api.schemas import DeletedOut, Out, Request
from morket.credentials import service
from morket.credentials.models import ProviderCredential
from morket.extensions import db

TAG = "Credentials"


class CredentialCreate(Request):
    """A provider key to store; it is encrypted and never returned again."""

    provider: str = Field(min_length=1, max_length=32, description="apollo, hunter, clearbit or http.")
    secret: str = Field(min_length=1, max_length=service.SECRET_MAX, description="The provider's API key.")
    label: str | None = Field(default=None, max_length=service.LABEL_MAX, description="A name to tell keys apart.")


class CredentialOut(Out):
    """A stored provider key, masked: only its last characters, never the key."""

    id: int
    provider: str
    label: str | None
    masked: str = Field(description='The last characters of a long key, e.g. "••••1a2b".')
    created_at: datetime
    last_used_at: datetime | None


def _out(credential: ProviderCredential) -> CredentialOut:
    return CredentialOut(
        id=credential.id,
        provider=credential.provider,
        label=credential.label,
        masked=credential.masked,
        created_at=credential.created_at,
        last_used_at=credential.last_used_at,
    )


@api_route(
    "/credentials",
    "GET",
    summary="List provider keys (masked)",
    tag=TAG,
    permission="credentials.view",
    response=list[CredentialOut],
)
def list_credentials(principal: Principal) -> list[CredentialOut]:
    """The workspace's own provider keys, masked; runs with these providers use them instead of credits."""
    return [_out(c) for c in service.list_credentials(principal.workspace)]


@api_route(
    "/credentials",
    "POST",
    summary="Store a provider key",
    tag=TAG,
    permission="credentials.manage",
    body=CredentialCreate,
    response=CredentialOut,
    status=201,
)
def create_credential(principal: Principal, body: CredentialCreate) -> CredentialOut:
    """Encrypt and store the key; one key per provider (delete the old one to replace it). Needs a user's token."""
    credential = service.create_credential(
        principal.workspace, user_actor(principal), body.provider, body.secret, label=body.label
    )
    db.session.commit()
    return _out(credential)


@api_route(
    "/credentials/<int:credential_id>",
    "DELETE",
    summary="Delete a provider key",
    tag=TAG,
    permission="credentials.manage",
    response=DeletedOut,
)
def delete_credential(principal: Principal, credential_id: int) -> DeletedOut:
    """Runs with this provider stop using the key at once. Needs a user's token."""
    service.delete_credential(principal.workspace, user_actor(principal), credential_id)
    db.session.commit()
    return DeletedOut(id=credential_id)
