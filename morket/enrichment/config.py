"""What an enrichment column is configured to do, kept in its ``Column.config`` (JSONB).

One model is read by the column setup form, the JSON API and the run engine, so that a column
saved by any of them runs the same way. Checking it against the table and the provider registry
(columns exist, operations exist and offer the target field) is the setup service's job.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

# The states a cell of an enrichment column can be in, as kept in the row's ``cell_state`` under
# the column id: ``{"status": <state>, "provider": "hunter", "message": "...", "run_id": 7}``.
CELL_STATES: tuple[str, ...] = (
    "queued",
    "running",
    "success",
    "no_data",
    "error",
    "retrying",
    "rate_limited",
    "awaiting_callback",
    "skipped",
    "cancelled",
)
FINAL_CELL_STATES: frozenset[str] = frozenset({"success", "no_data", "error", "skipped", "cancelled"})
CELL_STATE_LABELS: dict[str, str] = {
    "queued": "Queued",
    "running": "Running",
    "success": "Found",
    "no_data": "No data found",
    "error": "Error",
    "retrying": "Retrying",
    "rate_limited": "Rate limited",
    "awaiting_callback": "Awaiting callback",
    "skipped": "Skipped by condition",
    "cancelled": "Cancelled",
}

MAX_STEPS = 5
# "Run on the first rows" covers this many rows in the table's order; the scope "rest" every row after them.
FIRST_ROWS = 10


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Step(_Strict):
    """One provider operation of the waterfall, tried in order."""

    operation: str = Field(min_length=3, max_length=80, description="operation key, e.g. hunter.email_finder")
    # Per-step settings the operation reads (the generic HTTP provider's method, URL template...).
    options: dict[str, Any] = Field(default_factory=dict)


class Validation(_Strict):
    """A check on a step's value before the waterfall accepts it (e.g. Hunter's email verifier)."""

    operation: str = Field(min_length=3, max_length=80)
    # The verifier's input that receives the candidate value (the target field's value).
    input: str = "email"
    # The verifier's output field to read, and the values that accept the candidate.
    field: str = "status"
    accept: list[str] = Field(default_factory=lambda: ["valid"], min_length=1)


class OutputMapping(_Strict):
    """One delivered field written into one column of the table."""

    field: str = Field(min_length=1, max_length=80)
    column_id: int = Field(gt=0)


class EnrichmentConfig(_Strict):
    """The whole configuration of an enrichment column."""

    steps: list[Step] = Field(min_length=1, max_length=MAX_STEPS)
    # The field the waterfall is after: a step has found it when its result holds a non-empty value.
    target: str = Field(min_length=1, max_length=80)
    # Operation input name -> the column of this table that feeds it.
    inputs: dict[str, int] = Field(default_factory=dict)
    # Inputs made from a part of their column (``mapping.derive_input``): a first or last name from
    # a full name, a domain from an email or URL. Inputs not named here take the cell as it is.
    derive: dict[str, Literal["first_name", "last_name", "domain"]] = Field(default_factory=dict)
    outputs: list[OutputMapping] = Field(default_factory=list)
    validation: Validation | None = None
    # Rows that do not match this filter tree (the views' filter JSON) are skipped by condition.
    condition: dict[str, Any] | None = None
    auto_run: bool = False
    # Overwrite values a user typed into output columns (off: such cells are kept as they are).
    overwrite: bool = False

    @property
    def operation_keys(self) -> list[str]:
        keys = [s.operation for s in self.steps]
        if self.validation is not None:
            keys.append(self.validation.operation)
        return keys


def read_config(raw: dict[str, Any] | None) -> EnrichmentConfig:
    """Parse a column's stored config; raises pydantic.ValidationError when it is not one."""
    return EnrichmentConfig.model_validate(raw or {})
