"""Pydantic models for the JSON API: they validate requests and generate the OpenAPI document."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, EmailStr, Field, field_validator

from morket.core.roles import ADMIN, BILLING_ADMIN, MEMBER, OWNER, VIEWER

AnyRole = Literal["owner", "admin", "member", "viewer", "billing_admin"]
InvitableRole = Literal["admin", "member", "viewer", "billing_admin"]
KeyRole = Literal["admin", "member", "viewer"]
assert {OWNER, ADMIN, MEMBER, VIEWER, BILLING_ADMIN} == set(AnyRole.__args__)

BIGINT_MAX = 2**63 - 1
# A database id in a request body: a number PostgreSQL's bigint holds (a larger one is a 422, never a 500).
Id = Annotated[int, Field(ge=1, le=BIGINT_MAX)]


class Request(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    @field_validator("*", mode="after")
    @classmethod
    def _no_nul(cls, value: object) -> object:
        # PostgreSQL text cannot hold NUL; refuse it here as a field error instead of failing in the database.
        if isinstance(value, str) and "\x00" in value:
            raise ValueError("must not contain NUL characters")
        return value


class Out(BaseModel):
    model_config = ConfigDict(from_attributes=True)


class TokenRequest(Request):
    """Exchange an email and password for a token pair scoped to one workspace."""

    email: str = Field(min_length=3, max_length=320, examples=["ada@example.com"])
    password: str = Field(min_length=1, max_length=1024, examples=["correct horse battery staple"])
    workspace: str = Field(min_length=1, max_length=64, description="The workspace slug.", examples=["acme"])


class RefreshRequest(Request):
    """Exchange a refresh token for a new pair; name another workspace to switch to it."""

    refresh_token: str = Field(min_length=1, max_length=256)
    workspace: str | None = Field(default=None, min_length=1, max_length=64, description="Switch to this slug.")


class LogoutRequest(Request):
    """The refresh token whose family is revoked along with the bearer access token."""

    refresh_token: str = Field(min_length=1, max_length=256)


class WorkspaceUpdate(Request):
    name: str = Field(min_length=1, max_length=120, examples=["Acme Growth"])


class MemberUpdate(Request):
    role: AnyRole = Field(examples=["admin"])


class InvitationCreate(Request):
    email: EmailStr = Field(max_length=320, examples=["grace@example.com"])
    role: InvitableRole = "member"


class ApiKeyCreate(Request):
    name: str = Field(min_length=1, max_length=120, examples=["CRM sync"])
    role: KeyRole = "member"


class WorkspaceOut(Out):
    id: int
    slug: str
    name: str
    created_at: datetime


class TokenPairOut(Out):
    access_token: str
    token_type: Literal["Bearer"] = "Bearer"  # noqa: S105 - the scheme name, not a secret
    expires_in: int = Field(description="Seconds until the access token expires.", examples=[900])
    refresh_token: str
    workspace: WorkspaceOut
    role: AnyRole


class LogoutOut(Out):
    logged_out: bool


class UserOut(Out):
    id: int
    email: str
    name: str


class ApiKeyOut(Out):
    id: int
    name: str
    prefix: str
    role: str
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None


class ApiKeyCreatedOut(ApiKeyOut):
    key: str = Field(description="The secret key. It is shown once and never again.")


class MeOut(Out):
    principal: Literal["user", "api_key"]
    user: UserOut | None
    api_key: ApiKeyOut | None
    workspace: WorkspaceOut
    role: str


class MemberOut(Out):
    id: int
    user: UserOut
    role: str
    created_at: datetime


class InvitationOut(Out):
    id: int
    email: str
    role: str
    created_at: datetime
    expires_at: datetime
    accepted_at: datetime | None
    revoked_at: datetime | None


class DeletedOut(Out):
    id: int
    deleted: bool = True
