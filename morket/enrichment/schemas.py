"""Request and response models of enrichment: the column setup (shared by the form and the API), runs, cells.

The setup form builds a ``ColumnSetup`` from its fields and the API validates its body with the same
model, so a column saved from either is checked by one service (``morket.enrichment.columns``).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import Field, model_validator

from morket.api.schemas import Out, Request
from morket.enrichment.config import MAX_STEPS, Step, Validation

Scope = Literal["all", "empty", "selected", "rest"]
MAX_SELECTED_ROWS = 10_000


class OutputRequest(Request):
    """One delivered field written into an existing column (``column_id``) or a new one (``new_column``)."""

    field: str = Field(min_length=1, max_length=80, examples=["title"])
    column_id: int | None = Field(default=None, ge=1, le=2**63 - 1, description="An existing column of the table.")
    new_column: str | None = Field(default=None, min_length=1, max_length=120, description="Name of a new column.")

    @model_validator(mode="after")
    def _one_target(self) -> OutputRequest:
        if (self.column_id is None) == (self.new_column is None):
            raise ValueError("give either column_id or new_column")
        return self


class ColumnSetup(Request):
    """An enrichment column: the waterfall of provider steps, its inputs, outputs and when it runs."""

    name: str = Field(min_length=1, max_length=120, examples=["Work email"])
    steps: list[Step] = Field(min_length=1, max_length=MAX_STEPS, description="Tried in order until one finds a value.")
    target: str = Field(
        min_length=1, max_length=80, description="The field the waterfall is after.", examples=["email"]
    )
    inputs: dict[str, int] = Field(
        default_factory=dict, description="Operation input name → the column id that feeds it."
    )
    derive: dict[str, Literal["first_name", "last_name", "domain"]] = Field(
        default_factory=dict,
        description="Inputs made from a part of their column: a first or last name of a full name, "
        "the domain of an email or URL.",
        examples=[{"first_name": "first_name", "last_name": "last_name"}],
    )
    outputs: list[OutputRequest] = Field(default_factory=list, max_length=40)
    validation: Validation | None = Field(default=None, description="A verifier that must accept a step's value.")
    condition: dict[str, Any] | None = Field(default=None, description="Run only on rows matching this filter tree.")
    auto_run: bool = Field(default=False, description="Enrich new and changed rows automatically.")
    overwrite: bool = Field(default=False, description="Overwrite values a user typed into output columns.")


class OutputOut(Out):
    field: str
    column_id: int


class EnrichmentColumnOut(Out):
    """An enrichment column and its configuration."""

    id: int
    table_id: int
    name: str
    steps: list[Step]
    target: str
    inputs: dict[str, int]
    derive: dict[str, str] = {}
    outputs: list[OutputOut]
    validation: Validation | None
    condition: dict[str, Any] | None
    auto_run: bool
    overwrite: bool


class RunRequest(Request):
    """Which rows to enrich; above the confirmation threshold, ``confirm`` must be true."""

    scope: Scope = Field(
        default="all",
        description='"rest" is every row after the first 10 in the table\'s order (after a trial on the first rows).',
    )
    row_ids: list[int] | None = Field(default=None, max_length=MAX_SELECTED_ROWS, description='For scope "selected".')
    confirm: bool = False

    @model_validator(mode="after")
    def _rows_for_selected(self) -> RunRequest:
        if self.scope == "selected" and not self.row_ids:
            raise ValueError('scope "selected" needs row_ids')
        if self.row_ids and any(not 1 <= r <= 2**63 - 1 for r in self.row_ids):
            raise ValueError("row ids are positive whole numbers")
        return self


class EstimateOut(Out):
    """What a run would cost at most, before it starts."""

    rows: int
    max_credits: int = Field(
        description="An upper bound: every row delivering a value at its dearest price. "
        "Rows that deliver nothing cost nothing."
    )
    needs_confirmation: bool
    balance: int | None


class RunOut(Out):
    """An enrichment run and its progress."""

    id: int
    table_id: int
    column_id: int
    scope: str
    status: str
    pause_reason: str | None
    total: int
    done: int
    succeeded: int
    no_data: int
    failed: int
    skipped: int
    cancelled: int
    remaining: int
    credits_used: int = Field(description="Credits charged so far: one price per value delivered (succeeded).")
    estimate_credits: int
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None


class RunQuery(Request):
    """Filter the runs list by table."""

    table_id: int | None = Field(default=None, ge=1, le=2**63 - 1)
    limit: int = Field(default=50, ge=1, le=200)


class AttemptOut(Out):
    """One provider call made for one cell (or answered from the cache)."""

    id: int
    run_id: int | None
    row_id: int
    column_id: int
    provider: str
    operation: str
    step_index: int
    outcome: str
    http_status: int | None
    latency_ms: int | None
    cost: int = Field(
        description="What the call cost at the provider (credits at list price), whoever paid; the workspace is "
        "charged per delivered value, in the ledger."
    )
    key_source: str
    cached: bool
    message: str | None
    created_at: datetime


class AttemptQuery(Request):
    """Attempts of one cell: a row of the column."""

    row_id: int | None = Field(default=None, ge=1, le=2**63 - 1)


class CellQuery(Request):
    """Which rows' cells to return (comma-separated ids), at most 500."""

    # 4,000 characters (commas sent as %2C included) keep the request line under the web server's limit.
    row_ids: str = Field(min_length=1, max_length=4_000, pattern=r"^\d+(,\d+)*$", examples=["1,2,3"])


class CellOut(Out):
    """An enrichment cell: its value, the provider that produced it and its state."""

    row_id: int
    value: Any = None
    provider: str | None = None
    fields: dict[str, Any] = {}
    status: str | None = None
    message: str | None = None
    run_id: int | None = None


class CallbackOut(Out):
    accepted: bool
