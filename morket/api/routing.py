"""The one route helper for API endpoints: bearer auth, limits, role check, body validation, envelope.

``api_route`` also records each operation (models, permission, statuses) so that the OpenAPI
document is generated from exactly what the endpoints validate and return.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from functools import wraps
from typing import Any, Literal

from flask import Response, current_app, g, request
from pydantic import BaseModel, TypeAdapter, ValidationError
from sqlalchemy import or_, select, update
from sqlalchemy.exc import DBAPIError

from morket.accounts.models import User
from morket.api import bp
from morket.api.tokens import decode_access_token, is_jti_denied, load_token_membership
from morket.core.api import api_error, api_ok
from morket.core.db import utcnow
from morket.core.errors import Forbidden, Unauthorized
from morket.core.logging import log_security_event
from morket.core.ratelimit import GENERAL_LIMIT, client_ip, rate_limit_key
from morket.core.roles import PERMISSIONS, can
from morket.core.security import hash_token
from morket.extensions import db, limiter
from morket.workspaces.models import ApiKey, Workspace

API_KEY_PREFIX = "mk_live_"
API_KEY_TOUCH_INTERVAL = timedelta(minutes=1)
BIGINT_MAX = 2**63 - 1
UNDEFINED_TABLE = "42P01"
_RULE_PARAM = re.compile(r"<(?:(\w+):)?(\w+)>")
# Schemas whose tables are dropped while requests may be using them: the tables domain registers
# its user tables' (``register_droppable_schema``), since this package knows no domain's storage.
_DROPPABLE_SCHEMAS: set[str] = set()


@dataclass(frozen=True)
class Principal:
    """Who is calling: a user through an access token, or a workspace API key."""

    kind: Literal["user", "api_key"]
    workspace: Workspace
    role: str
    user: User | None = None
    api_key: ApiKey | None = None
    jti: str | None = None
    exp: int | None = None

    @property
    def rate_limit_key(self) -> str:
        return f"user:{self.user.id}" if self.user is not None else f"key:{self.api_key.id}"  # type: ignore[union-attr]


@dataclass
class Operation:
    """One documented API operation."""

    method: str
    rule: str
    endpoint: str
    summary: str
    tag: str
    description: str = ""
    permission: str | None = None
    authenticated: bool = True
    body: type[BaseModel] | None = None
    query: type[BaseModel] | None = None
    meta: type[BaseModel] | None = None
    response: Any = None
    status: int = 200
    path_params: list[str] = field(default_factory=list)
    errors: tuple[int, ...] = ()
    hidden: bool = False  # a role without the permission gets 404, as if the operation did not exist
    media_type: str = "application/json"

    @property
    def path(self) -> str:
        return "/api/v1" + _RULE_PARAM.sub(r"{\2}", self.rule)

    @property
    def error_statuses(self) -> list[int]:
        statuses = {429, *self.errors}
        if self.authenticated:
            statuses |= {401, 503}
        if self.permission:
            statuses.add(403)
        if self.body is not None:
            statuses |= {400, 413, 422}
        if self.query is not None:
            statuses.add(422)
        if self.path_params:
            statuses.add(404)
        if self.method in {"POST", "PATCH", "DELETE"} and self.authenticated:
            statuses.add(409)
        return sorted(statuses)


OPERATIONS: list[Operation] = []


@dataclass(frozen=True)
class WithMeta:
    """A view's result together with the envelope's ``meta`` (for example its pagination)."""

    data: Any
    meta: dict[str, Any]


def user_actor(principal: Principal) -> User:
    """Return the user behind ``principal``; API keys may not make changes that are audited to a person."""
    if principal.user is None:
        raise Forbidden("API keys cannot do this; use a user's access token.")
    return principal.user


def _unauthorized(message: str):
    return api_error("unauthorized", message, status=401, headers={"WWW-Authenticate": 'Bearer realm="morket-api"'})


def authenticate_bearer() -> Principal:
    """Resolve the ``Authorization: Bearer`` credential (access token or API key) or raise Unauthorized."""
    scheme, _, credential = request.headers.get("Authorization", "").partition(" ")
    credential = credential.strip()
    if scheme.lower() != "bearer" or not credential:
        raise Unauthorized("Send an Authorization: Bearer <token> header.")
    if credential.startswith(API_KEY_PREFIX):
        return _principal_from_api_key(credential)
    claims = decode_access_token(credential)
    if is_jti_denied(claims.jti):
        raise Unauthorized("The access token was revoked; sign in again.")
    membership = load_token_membership(claims)  # also refuses a token whose refresh family was revoked
    if membership is None:
        raise Unauthorized("The access token is no longer valid for this workspace.")
    # The role comes from the membership, not the token, so a demotion takes effect at once.
    return Principal(
        kind="user",
        workspace=membership.workspace,
        role=membership.role,
        user=membership.user,
        jti=claims.jti,
        exp=claims.exp,
    )


def _principal_from_api_key(plaintext: str) -> Principal:
    row = db.session.execute(
        select(ApiKey, Workspace)
        .join(Workspace, Workspace.id == ApiKey.workspace_id)
        .where(ApiKey.key_hash == hash_token(plaintext), ApiKey.revoked_at.is_(None))
    ).first()
    if row is None:
        raise Unauthorized("The API key is not valid or was revoked.")
    key, workspace = row
    now = utcnow()
    if key.last_used_at is None or now - key.last_used_at >= API_KEY_TOUCH_INTERVAL:
        # Its own short transaction: usage is recorded even for read-only calls, at most once a minute.
        db.session.execute(
            update(ApiKey)
            .where(
                ApiKey.id == key.id,
                or_(ApiKey.last_used_at.is_(None), ApiKey.last_used_at < now - API_KEY_TOUCH_INTERVAL),
            )
            .values(last_used_at=now),
            execution_options={"synchronize_session": False},
        )
        db.session.commit()
    return Principal(kind="api_key", workspace=workspace, role=key.role, api_key=key)


def _parse_body(model: type[BaseModel]) -> BaseModel:
    raw = request.get_data(cache=True)
    if len(raw) > current_app.config["MORKET"]["MAX_JSON_BYTES"]:
        from werkzeug.exceptions import RequestEntityTooLarge

        raise RequestEntityTooLarge()
    if not raw.strip():
        # The document marks every declared body required: an empty one is refused, never read as {}.
        fields = {"body": ["A JSON body is required."]}
        raise _BodyError(api_error("validation_error", "Send a JSON body.", status=422, fields=fields))
    try:
        payload = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise _BodyError(api_error("invalid_json", "The request body is not valid JSON.", status=400)) from None
    # Strict: JSON says what it means, so false is not 0 and 0 is not false (the document's types hold).
    return _validate(model, payload, strict_json=raw)


def _parse_query(model: type[BaseModel]) -> BaseModel:
    return _validate(model, request.args.to_dict())


def _nul_paths(value: Any, path: str) -> list[str]:
    """Where ``value`` holds a NUL character (in a string or an object key)."""
    if isinstance(value, str):
        return [path or "body"] if "\x00" in value else []
    if isinstance(value, dict):
        found = [f"{path}.{key}".lstrip(".") for key in value if isinstance(key, str) and "\x00" in key]
        for key, item in value.items():
            found += _nul_paths(item, f"{path}.{key}".lstrip("."))
        return found
    if isinstance(value, list):
        return [p for i, item in enumerate(value) for p in _nul_paths(item, f"{path}.{i}".lstrip("."))]
    return []


def _validate(model: type[BaseModel], payload: Any, strict_json: bytes | None = None) -> BaseModel:
    # PostgreSQL text and jsonb cannot hold NUL: every string the API takes refuses it (the document
    # says so with a pattern on each string), wherever it sits in the body.
    # Cell maps skip it: each cell is parsed for its column, which refuses NUL and names every bad cell at once.
    nul = [] if getattr(model, "cells_checked_per_column", False) else _nul_paths(payload, "")
    if nul:
        fields = {name: ["must not contain NUL characters"] for name in nul[:50]}
        raise _BodyError(api_error("validation_error", "Some fields need fixing.", status=422, fields=fields))
    try:
        if strict_json is not None:
            return model.model_validate_json(strict_json, strict=True)
        return model.model_validate(payload)
    except ValidationError as exc:
        fields: dict[str, list[str]] = {}
        for error in exc.errors(include_url=False):
            name = ".".join(str(part) for part in error["loc"]) or "body"
            fields.setdefault(name, []).append(error["msg"])
        raise _BodyError(api_error("validation_error", "Some fields need fixing.", status=422, fields=fields)) from None


def register_droppable_schema(schema: str) -> None:
    """Answer 404 when a statement fails because a table of ``schema`` was dropped under it."""
    _DROPPABLE_SCHEMAS.add(schema)


def _user_table_dropped(exc: DBAPIError) -> bool:
    """Whether a statement failed because a user table's storage (``ut.*``) was dropped under it."""
    if getattr(exc.orig, "sqlstate", None) != UNDEFINED_TABLE:
        return False
    message = str(exc.orig)
    return any(f'relation "{schema}.' in message for schema in _DROPPABLE_SCHEMAS)


class _BodyError(Exception):
    def __init__(self, response: Any) -> None:
        super().__init__("invalid body")
        self.response = response


def api_route(
    rule: str,
    method: str,
    *,
    summary: str,
    tag: str,
    permission: str | None = None,
    body: type[BaseModel] | None = None,
    query: type[BaseModel] | None = None,
    meta: type[BaseModel] | None = None,
    response: Any = None,
    status: int = 200,
    authenticated: bool = True,
    limit: str = GENERAL_LIMIT,
    limit_key: Callable[[], str] | None = None,
    errors: tuple[int, ...] = (),
    description: str = "",
    hidden: bool = False,
    media_type: str = "application/json",
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Register an API endpoint on the api blueprint.

    The view receives ``principal`` (when authenticated), ``body`` and ``query`` (when their
    models are declared) plus its URL parameters, and returns an instance of ``response`` (or a
    list of them), or a ``WithMeta`` of one and the envelope's ``meta`` (documented by ``meta``);
    the helper wraps it in the envelope with ``status``. A view declared with another ``media_type``
    (a file download) returns its own Response, which is sent as it is. With ``hidden``, a role
    without the permission gets 404 rather than 403 (billing: its existence is not theirs to know).
    """
    if permission is not None and (not authenticated or permission not in PERMISSIONS):
        raise ValueError(f"{rule}: permission {permission!r} needs an authenticated route and a declared permission")
    adapter = TypeAdapter(response) if response is not None else None

    def decorator(view: Callable[..., Any]) -> Callable[..., Any]:
        endpoint = view.__name__

        @wraps(view)
        def limited(**kwargs: Any) -> Any:
            principal = kwargs.get("principal")
            if permission and not can(principal.role, permission):
                log_security_event(
                    "authorization_refused",
                    principal=principal.rate_limit_key,
                    workspace_id=principal.workspace.id,
                    permission=permission,
                )
                if hidden:
                    return api_error("not_found", "There is nothing here, or you do not have access to it.", status=404)
                return api_error("forbidden", "Your role in this workspace does not allow this.", status=403)
            try:
                if body is not None:
                    kwargs["body"] = _parse_body(body)
                if query is not None:
                    kwargs["query"] = _parse_query(query)
            except _BodyError as exc:
                return exc.response
            try:
                result = view(**kwargs)
            except DBAPIError as exc:
                if not _user_table_dropped(exc):
                    raise
                # The table was deleted by another request between our lookup and our statement.
                db.session.rollback()
                return api_error("not_found", "That table no longer exists.", status=404)
            if isinstance(result, Response):
                return result
            extra = None
            if isinstance(result, WithMeta):
                result, extra = result.data, result.meta
            data = adapter.dump_python(result, mode="json") if adapter is not None else result
            return api_ok(data, status=status, meta=extra)

        checked = limiter.limit(limit, key_func=limit_key or rate_limit_key)(limited)

        @wraps(view)
        def handler(**kwargs: Any) -> Any:
            if any(isinstance(v, int) and v > BIGINT_MAX for v in kwargs.values()):
                return api_error("not_found", "There is nothing here, or you do not have access to it.", status=404)
            if authenticated:
                try:
                    principal = authenticate_bearer()
                except Unauthorized as exc:
                    log_security_event("api_auth_failed", path=request.path, ip=client_ip(), reason=exc.message)
                    return _unauthorized(exc.message)
                g.rate_limit_principal = principal.rate_limit_key
                g.log_user_id = principal.user.id if principal.user is not None else None
                g.log_workspace_id = principal.workspace.id
                kwargs["principal"] = principal
            return checked(**kwargs)

        handler.morket_permission = permission  # type: ignore[attr-defined]
        bp.add_url_rule(rule, endpoint=endpoint, view_func=handler, methods=[method])
        OPERATIONS.append(
            Operation(
                method=method,
                rule=rule,
                endpoint=f"{bp.name}.{endpoint}",
                summary=summary,
                tag=tag,
                description=description or (view.__doc__ or "").strip(),
                permission=permission,
                authenticated=authenticated,
                body=body,
                query=query,
                meta=meta,
                response=response,
                status=status,
                path_params=[name for _, name in _RULE_PARAM.findall(rule)],
                errors=errors,
                media_type=media_type,
                hidden=hidden,
            )
        )
        return handler

    return decorator
