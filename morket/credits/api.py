"""Credits over the JSON API: the workspace's balance and its ledger, newest first, by keyset cursor."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import Field

from morket.api.routing import BIGINT_MAX, Principal, WithMeta, api_route
from morket.api.schemas import Out, Request
from morket.credits import service
from morket.credits.models import LedgerEntry

TAG = "Credits"
EntryKind = Literal["grant", "debit", "refund", "adjustment", "usage"]


class BalanceOut(Out):
    """The workspace's credit balance."""

    balance: int = Field(description="Credits left; never below zero.")


class LedgerQuery(Request):
    """A page of the ledger: entries older than ``cursor``, optionally of one kind."""

    cursor: int | None = Field(
        default=None, ge=1, le=BIGINT_MAX, description="The previous page's next_cursor; omit for the newest entries."
    )
    limit: int = Field(default=service.DEFAULT_PAGE, ge=1, le=service.MAX_PAGE, description="Entries per page.")
    kind: EntryKind | None = Field(default=None, description="Only entries of this kind.")


class LedgerEntryOut(Out):
    """One ledger entry; a debit names the run, row, column and provider attempt that caused it."""

    id: int
    kind: EntryKind
    amount: int = Field(description="Signed: charges and removals are negative; own-key use is 0.")
    balance_after: int
    idempotency_key: str
    run_id: int | None
    row_id: int | None
    column_id: int | None
    attempt_id: int | None
    provider: str | None
    operation: str | None
    key_source: Literal["platform", "own", "none"] | None
    refers_to_id: int | None = Field(description="For a refund: the charge it gives back.")
    actor_id: int | None
    note: str
    created_at: datetime


class LedgerPagination(Out):
    limit: int
    next_cursor: int | None = Field(description="Pass as ?cursor= for older entries; null on the last page.")


class LedgerMeta(Out):
    pagination: LedgerPagination


@api_route("/credits", "GET", summary="Credit balance", tag=TAG, permission="credits.view", response=BalanceOut)
def get_credits(principal: Principal) -> BalanceOut:
    """The balance the next enrichment charges against."""
    return BalanceOut(balance=service.balance(principal.workspace.id))


@api_route(
    "/credits/ledger",
    "GET",
    summary="Credit ledger",
    tag=TAG,
    permission="credits.view",
    query=LedgerQuery,
    meta=LedgerMeta,
    response=list[LedgerEntryOut],
)
def list_ledger(principal: Principal, query: LedgerQuery) -> WithMeta:
    """Grants, charges, own-key use, refunds and adjustments, newest first; follow ``next_cursor`` for older ones."""
    page = service.list_ledger(principal.workspace.id, kind=query.kind, before=query.cursor, limit=query.limit)
    entries: list[LedgerEntry] = page.entries
    pagination = LedgerPagination(limit=query.limit, next_cursor=page.next_cursor)
    return WithMeta(
        [LedgerEntryOut.model_validate(entry) for entry in entries], {"pagination": pagination.model_dump()}
    )
