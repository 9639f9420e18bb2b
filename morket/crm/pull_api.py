"""CRM pulls over the JSON API: create a pull source (and start it), start again, poll, cancel, list.

Members and up start pulls (``crm.use``); viewers list sources and read pulls (``crm.view``).
A refused source (an unknown field, a bad condition, a list that is gone) is a 422 naming it, and
leaves no table behind.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import Field

from morket.api.routing import Principal, api_route, user_actor
from morket.api.schemas import Id, Out, Request
from morket.crm import pull
from morket.crm.pull_models import CrmPull, CrmPullSource
from morket.extensions import db
from morket.tables import service as tables

TAG = "CRM pulls"


class PullOut(Out):
    id: int
    source_id: int
    status: str = Field(description="queued, running, done, failed or cancelled.")
    full: bool = Field(description="False when only records modified since the last pull were asked for.")
    since: str | None = Field(default=None, description="The high-water mark this pull read from (ISO 8601).")
    rows_read: int
    rows_written: int
    inserted: int
    updated: int
    removed: int = Field(default=0, description="Rows removed because their record was deleted in the CRM.")
    error: str | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None


class SourceOut(Out):
    id: int
    table_id: int
    provider: str
    kind: str = Field(description="list (HubSpot list), object (all HubSpot contacts or companies) or query.")
    label: str
    object: str
    fields: list[str]
    key_column_id: int | None
    on_delete: str = Field(default="keep", description="keep or remove: rows whose record was deleted in the CRM.")
    high_water: str | None = None
    last_run_at: datetime | None = None
    last_status: str | None = None
    latest_pull: PullOut | None = None


class SourceCreate(Request):
    provider: Literal["hubspot", "salesforce"]
    kind: Literal["list", "object", "query"]
    list_id: str | None = Field(default=None, max_length=40, description="HubSpot list id (kind list).")
    object: str | None = Field(default=None, max_length=80, examples=["Contact"])
    fields: list[str] = Field(default_factory=list, max_length=pull.MAX_FIELDS)
    where: list[tuple[str, str, str]] = Field(
        default_factory=list,
        max_length=pull.MAX_WHERE,
        description="Salesforce conditions as [field, operator, value], joined with AND; values are literals.",
    )
    soql: str | None = Field(
        default=None,
        max_length=4000,
        description="Salesforce, owners and admins: SELECT field, … FROM Object [WHERE field op literal AND …], "
        "instead of object, fields and where (read into those parts and checked against describe).",
    )
    table_id: Id | None = Field(default=None, description="Pull into this table (else a new one).")
    table_name: str | None = Field(default=None, max_length=120)
    key_column: str | None = Field(default=None, max_length=120, description="Upsert key column (id or name).")
    on_delete: Literal["keep", "remove"] = Field(
        default="keep",
        description="When a record is deleted in the CRM (HubSpot: archived or gone from the list): keep the row "
        "or remove it on the next pull.",
    )
    start: bool = True


class PullStart(Request):
    full: bool = Field(default=False, description="Read everything again instead of what changed since last time.")


def _pull_out(found: CrmPull) -> PullOut:
    return PullOut.model_validate(found)


def _source_out(source: CrmPullSource) -> SourceOut:
    latest = pull.latest_pull(source)
    return SourceOut(
        id=source.id, table_id=source.table_id, provider=source.provider, kind=source.kind, label=source.label,
        object=source.spec.get("object", ""), fields=list(source.spec.get("fields") or []),
        key_column_id=source.key_column_id, on_delete=source.on_delete, high_water=source.high_water,
        last_run_at=source.last_run_at, last_status=source.last_status,
        latest_pull=_pull_out(latest) if latest else None,
    )  # fmt: skip


@api_route(
    "/crm/pull-sources",
    "GET",
    summary="List CRM pull sources",
    tag=TAG,
    permission="crm.view",
    response=list[SourceOut],
)
def list_pull_sources(principal: Principal) -> list[SourceOut]:
    """Every pull source of the workspace, newest first, with its latest pull."""
    return [_source_out(s) for s in pull.list_sources(principal.workspace)]


@api_route(
    "/crm/pull-sources",
    "POST",
    summary="Create a CRM pull source (and start it)",
    tag=TAG,
    permission="crm.use",
    body=SourceCreate,
    response=SourceOut,
    status=201,
    errors=(404,),  # the CRM is not connected, or the table is not this workspace's
    limit="30 per minute",
)
def create_pull_source(principal: Principal, body: SourceCreate) -> SourceOut:
    """Check the source with the CRM, create the table (or its missing columns) and the source; start a pull."""
    table = tables.get_table_or_404(principal.workspace, body.table_id) if body.table_id else None
    where = [list(w) for w in body.where]
    raw = {"list_id": body.list_id, "object": body.object, "fields": body.fields, "where": where, "soql": body.soql}
    actor = user_actor(principal)
    source = pull.create_source(
        principal.workspace, actor, body.provider, body.kind, raw, table=table, table_name=body.table_name,
        key_column=body.key_column, on_delete=body.on_delete,
    )  # fmt: skip
    if body.start:
        pull.start_pull(principal.workspace, actor, source)
    out = _source_out(source)
    db.session.commit()
    return out


@api_route(
    "/crm/pull-sources/<int:pull_source_id>/pulls",
    "POST",
    summary="Pull a source again",
    tag=TAG,
    permission="crm.use",
    body=PullStart,
    response=PullOut,
    status=202,
    limit="30 per minute",
)
def start_crm_pull(principal: Principal, body: PullStart, pull_source_id: int) -> PullOut:
    """Queue a pull: only records modified since the last one, unless ``full``. 409 while one runs."""
    source = pull.get_source_or_404(principal.workspace, pull_source_id)
    found = pull.start_pull(principal.workspace, user_actor(principal), source, full=body.full)
    out = _pull_out(found)
    db.session.commit()
    return out


@api_route("/crm/pulls/<int:pull_id>", "GET", summary="Poll a CRM pull", tag=TAG, permission="crm.view",
           response=PullOut)  # fmt: skip
def get_crm_pull(principal: Principal, pull_id: int) -> PullOut:
    """The pull's state and counts (rows read from the CRM, rows written: inserted and updated)."""
    return _pull_out(pull.get_pull_or_404(principal.workspace, pull_id))


@api_route("/crm/pulls/<int:pull_id>/cancel", "POST", summary="Cancel a CRM pull", tag=TAG, permission="crm.use",
           response=PullOut)  # fmt: skip
def cancel_crm_pull(principal: Principal, pull_id: int) -> PullOut:
    """Stop after the page in progress; what was written stays (the next pull goes on from the last mark)."""
    found = pull.cancel_pull(principal.workspace, pull.get_pull_or_404(principal.workspace, pull_id))
    out = _pull_out(found)
    db.session.commit()
    return out
