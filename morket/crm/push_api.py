"""CRM field mappings and pushes over the JSON API: read and save a mapping, preview, start, poll, cancel."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from morket.api.routing import Principal, api_route
from morket.api.schemas import BIGINT_MAX, Id, Out, Request
from morket.core.errors import ValidationFailed
from morket.crm import mapping as mappings
from morket.crm import push, service
from morket.extensions import db
from morket.tables.access import get_table_or_404

TAG = "CRM pushes"
PUSH_LIMIT = "20 per minute"
PREVIEW_LIMIT = "30 per minute"


class FieldPair(Request):
    column_id: Id = Field(description="A column of the table.")
    field: str = Field(max_length=120, description="The CRM field's API name.")


class MappingIn(Request):
    object: str = Field(max_length=64, description="contacts or companies (HubSpot); Contact, Lead or Account.")
    key_field: str = Field(max_length=120, description="A unique or external-id field of the object.")
    key_column_id: int = Field(
        ge=0, le=BIGINT_MAX, description="The column whose values match the key; 0 for the Morket row id."
    )
    record_id_column_id: Id | None = Field(
        default=None, description="A text column for the CRM record ids; null creates one (“HubSpot ID”)."
    )
    fields: list[FieldPair] = Field(default_factory=list, max_length=mappings.MAX_FIELDS)


class CheckOut(Out):
    column_id: int
    field: str
    level: Literal["ok", "warn", "error"]
    message: str | None = None


class MappingOut(Out):
    provider: str
    object: str
    key_field: str
    key_column_id: int | None = Field(description="0: the Morket row id.")
    record_id_column_id: int | None
    fields: list[dict[str, Any]]
    saved: bool = Field(description="False: a mapping suggested by column names, not saved yet.")
    checks: list[CheckOut]


class ScopeIn(Request):
    scope: Literal["all", "selected", "view"] = "all"
    row_ids: list[Id] | None = Field(default=None, max_length=push.MAX_SELECTED)
    view_id: Id | None = None


class PushIn(ScopeIn):
    changes_id: str | None = Field(
        default=None,
        max_length=64,
        description=(
            "Send only the changes: a preview's ``changes_id`` (yours, for this table and CRM, 15 minutes). "
            "Only the rows that preview found to create or update are sent; leave the scope out."
        ),
    )


class DifferenceOut(Out):
    row_id: int
    key: str
    record_id: str | None
    fields: list[dict[str, Any]] = Field(description="{field, column, crm, morket} for each field that differs.")


class PreviewOut(Out):
    rows: int
    create: int
    update: int
    unchanged: int
    skipped: int = Field(description="Rows with no key value (or a key repeated in the table): not sent.")
    calls: int = Field(description="CRM read calls the preview made.")
    estimate_calls: int = Field(description="CRM upsert calls the push would make.")
    differences: list[DifferenceOut] = Field(description=f"The first {push.PREVIEW_SHOWN} records to update.")
    changes_id: str | None = Field(
        description="Start a push with this to send only the rows to create or update (null: nothing to change)."
    )


class PushOut(Out):
    id: int
    provider: str | None
    object: str | None
    status: str
    finished: bool
    pause_reason: str | None
    total: int
    done: int
    remaining: int
    succeeded: int
    created: int
    updated: int
    failed: int
    cancelled: int
    record_id_column_id: int
    percent: int
    started_at: str | None
    finished_at: str | None


def _table(principal: Principal, table_id: int):
    return get_table_or_404(principal.workspace, table_id)


@api_route(
    "/tables/<int:table_id>/crm-mappings/<provider>",
    "GET",
    summary="Read a table's CRM mapping",
    tag=TAG,
    permission="crm.view",
    response=MappingOut,
    errors=(409, 422, 502),
)
def get_crm_mapping(principal: Principal, table_id: int, provider: str) -> MappingOut:
    """The saved mapping with fresh type checks, or (``saved: false``) one suggested by column names."""
    service.spec_or_404(provider)
    table = _table(principal, table_id)
    objects = push.crm_objects(principal.workspace, provider)
    plan = mappings.mapping_for_form(principal.workspace, table, provider, objects)
    db.session.commit()
    return MappingOut(**plan.as_dict())


@api_route(
    "/tables/<int:table_id>/crm-mappings/<provider>",
    "PUT",
    summary="Save a table's CRM mapping",
    tag=TAG,
    permission="crm.use",
    body=MappingIn,
    errors=(409, 422, 502),
    response=MappingOut,
)
def put_crm_mapping(principal: Principal, table_id: int, provider: str, body: MappingIn) -> MappingOut:
    """Type checks: ``error`` refuses the save (422), ``warn`` is saved and returned."""
    service.spec_or_404(provider)
    table = get_table_or_404(principal.workspace, table_id, lock="update")
    objects = push.crm_objects(principal.workspace, provider)
    _, plan = mappings.save_mapping(principal.workspace, principal.user, table, provider, objects, body.model_dump())
    db.session.commit()
    return MappingOut(**plan.as_dict())


@api_route(
    "/tables/<int:table_id>/crm-pushes/<provider>/preview",
    "POST",
    summary="Preview a CRM push",
    tag=TAG,
    permission="crm.use",
    body=ScopeIn,
    response=PreviewOut,
    errors=(409, 422, 502),
    limit=PREVIEW_LIMIT,
)
def preview_crm_push(principal: Principal, table_id: int, provider: str, body: ScopeIn) -> PreviewOut:
    """Reads the CRM's records by key (nothing is written): how many would be created, updated, unchanged."""
    table = _table(principal, table_id)
    args = body.model_dump()
    found = push.preview(principal.workspace, table, provider, **args)
    estimate = push.estimate(principal.workspace, table, provider, **args)
    changes = (
        push.remember_changes(principal.workspace, principal.user, table, provider, found)
        if found.changed_ids
        else None
    )
    db.session.commit()
    return PreviewOut(**{**found.as_dict(), "estimate_calls": estimate.calls, "changes_id": changes})


@api_route(
    "/tables/<int:table_id>/crm-pushes/<provider>",
    "POST",
    summary="Start a CRM push",
    tag=TAG,
    permission="crm.use",
    body=PushIn,
    response=PushOut,
    errors=(409, 422, 502),
    status=202,
    limit=PUSH_LIMIT,
)
def start_crm_push(principal: Principal, table_id: int, provider: str, body: PushIn) -> PushOut:
    """Upserts the rows by the mapping's key; poll the push for progress. Pushes cost no credits.

    With a preview's ``changes_id``, only the rows that preview found to create or update are sent."""
    table = _table(principal, table_id)
    scope = body.model_dump(exclude={"changes_id"})
    if body.changes_id is not None:
        if body.scope != "all" or body.row_ids is not None or body.view_id is not None:
            raise ValidationFailed(
                "Send either a preview's changes_id or a scope, not both.", fields={"changes_id": ["with a scope"]}
            )
        row_ids = push.changed_rows(principal.workspace, principal.user, table, provider, body.changes_id)
        scope = {"scope": "selected", "row_ids": row_ids, "view_id": None}
    run = push.start_push(principal.workspace, principal.user, table, provider, **scope)
    out = PushOut(**push.progress(run))
    db.session.commit()
    return out


@api_route("/crm-pushes/<int:push_id>", "GET", summary="Poll a CRM push", tag=TAG, permission="crm.view",
           response=PushOut)  # fmt: skip
def get_crm_push(principal: Principal, push_id: int) -> PushOut:
    """Progress and counts (created, updated, failed); each failed row's CRM message is on its cell."""
    return PushOut(**push.progress(push.get_push_or_404(principal.workspace, push_id)))


@api_route("/crm-pushes/<int:push_id>/cancel", "POST", summary="Cancel a CRM push", tag=TAG, permission="crm.use",
           response=PushOut, errors=(409,))  # fmt: skip
def cancel_crm_push(principal: Principal, push_id: int) -> PushOut:
    """Rows not sent yet end as cancelled; a call already in flight still lands in the CRM."""
    run = push.cancel_push(principal.workspace, principal.user, push.get_push_or_404(principal.workspace, push_id))
    out = PushOut(**push.progress(run))
    db.session.commit()
    return out
