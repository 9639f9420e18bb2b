"""Pydantic models of the tables API: they validate requests and generate its OpenAPI document."""

from __future__ import annotations

import math
from datetime import datetime
from typing import Annotated, Any, ClassVar, Literal

from pydantic import AfterValidator, Field, RootModel, model_validator

from morket.api.schemas import BIGINT_MAX, Id, Out, Request
from morket.tables.models import COLUMN_TYPES
from morket.tables.windows import MAX_WINDOW

MAX_BULK_ROWS = 1000
MAX_POSITION = 2**62
MAX_JSON_DEPTH = 32

# Enrichment columns are added with their setup (POST /tables/{id}/enrichment-columns), which checks it.
ColumnType = Literal[tuple(t for t in COLUMN_TYPES if t != "enrichment")]  # type: ignore[valid-type]


def _storable(value: Any, depth: int = 0) -> Any:
    """Refuse JSON that PostgreSQL's jsonb cannot hold: NUL, lone surrogates, NaN or Infinity, deep nesting."""
    if depth > MAX_JSON_DEPTH:
        raise ValueError("is nested too deeply")
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError("must not contain NaN or Infinity")
    if isinstance(value, str):
        if "\x00" in value:
            raise ValueError("must not contain NUL characters")
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise ValueError("contains an invalid character (a lone surrogate)") from None
    elif isinstance(value, dict):
        for key, item in value.items():
            _storable(key, depth + 1)
            _storable(item, depth + 1)
    elif isinstance(value, list):
        for item in value:
            _storable(item, depth + 1)
    return value


def _drop_default(schema: dict[str, Any]) -> None:
    schema.pop("default", None)


def Omittable(**kwargs: Any) -> Any:  # noqa: N802 - reads like Field where fields are declared
    """A field that may be left out (it is then not set) but is never null when sent."""
    return Field(default=None, json_schema_extra=_drop_default, **kwargs)


JsonObject = Annotated[dict[str, Any], AfterValidator(_storable)]
Name = Annotated[str, Field(min_length=1, max_length=120, examples=["Accounts"])]
# A cell value as JSON: text, a number, true/false, an ISO 8601 date or date-time, a list of
# options for multi select, any JSON for JSON columns, or null for an empty cell.
CellValue = Annotated[Any, Field(description="A value typed for its column.")]


class ColumnCreate(Request):
    name: Name = Field(examples=["Company"])
    type: ColumnType = Field(default="text", examples=["text"])
    config: JsonObject | None = Field(
        default=None,
        description=(
            "Settings of the type: select options ({options: [...]}), a currency code ({currency: 'EUR'}), "
            "a formula ({expression: '...'}, required for formula columns), a lookup ({source_table_id, "
            "source_key_column_id, key_column_id, field_column_id, mode: first|joined|count, match?, separator?, "
            "limit?}: ids of another table of the workspace and of its columns; required for lookup columns). "
            "AI columns take none."
        ),
        examples=[{}],
    )


class ColumnUpdate(Request):
    name: Name | None = Field(default=None, examples=["Company name"])
    config: JsonObject | None = Field(
        default=None,
        description="A lookup column's new settings (as when it is added); the column is filled again.",
        examples=[None],
    )


class TableCreate(Request):
    name: Name
    folder: str | None = Field(default=None, max_length=120, examples=["Prospects"])
    columns: list[ColumnCreate] = Field(default_factory=list, max_length=100)


class TableUpdate(Request):
    name: Name


class RowValues(RootModel[dict[str, CellValue]]):
    """Cells of one row, keyed by column id or column name: ``{"Company": "Acme", "12": 250}``."""

    cells_checked_per_column: ClassVar[bool] = True

    root: dict[str, CellValue] = Field(min_length=1, max_length=200, examples=[{"Company": "Acme"}])


class RowCreate(RootModel[dict[str, CellValue]]):
    """Cells of a new row, keyed by column id or column name; columns left out start empty."""

    cells_checked_per_column: ClassVar[bool] = True

    root: dict[str, CellValue] = Field(max_length=200, examples=[{"Company": "Acme", "Employees": 250}])


class RowsBulkCreate(Request):
    cells_checked_per_column: ClassVar[bool] = True
    rows: list[dict[str, CellValue]] = Field(
        min_length=1,
        max_length=MAX_BULK_ROWS,
        description=f"1 to {MAX_BULK_ROWS:,} rows, each keyed by column id or name; all are added or none.",
        examples=[[{"Company": "Acme"}, {"Company": "Globex"}]],
    )


class RowsQuery(Request):
    """Read a window (``start``) or the page after a cursor (``after``), in a view's order if given."""

    start: int = Omittable(ge=0, le=MAX_POSITION, description="Position of the first row (0-based). Default 0.")
    after: int = Omittable(
        ge=0,
        le=MAX_POSITION,
        description="A cursor: rows after this position (the previous page's next_cursor).",
    )
    limit: int = Field(default=100, ge=1, le=MAX_WINDOW, description=f"Rows per page, 1 to {MAX_WINDOW}.")
    view: int = Omittable(ge=1, le=BIGINT_MAX, description="Read in this view's sort and filters.")

    @model_validator(mode="after")
    def _one_mode(self) -> RowsQuery:
        if self.start is not None and self.after is not None:
            raise ValueError("Use start or after, not both.")
        return self


class ViewFields(Request):
    sort: list[JsonObject] = Omittable(
        max_length=20,
        description="Sort keys in order: {column_id, dir: asc or desc}; empty cells sort last.",
        examples=[[{"column_id": 1, "dir": "asc"}]],
    )
    filters: JsonObject = Omittable(
        description=(
            "A group {op: and or or, conditions: [...]}; a condition is {column_id, operator, value}, "
            "{operator: search, value} or a nested group."
        ),
        examples=[{"op": "and", "conditions": [{"column_id": 1, "operator": "contains", "value": "acme"}]}],
    )
    hidden_column_ids: list[Id] = Omittable(max_length=200)
    frozen_count: int = Omittable(ge=0, le=10)
    widths: dict[str, Annotated[int, Field(ge=40, le=1200)]] = Omittable(examples=[{"1": 240}])


class ViewCreate(ViewFields):
    name: Name = Field(examples=["Customers by size"])


class ViewUpdate(ViewFields):
    name: Name = Omittable(examples=["Customers by size"])


class ColumnOut(Out):
    id: int
    name: str
    type: str
    config: dict[str, Any]
    position: int
    hidden: bool
    width: int


class TableSummaryOut(Out):
    id: int
    name: str
    folder: str | None
    row_count: int
    created_at: datetime


class TableOut(TableSummaryOut):
    columns: list[ColumnOut] = Field(description="Live columns in display order.")


class ViewOut(Out):
    id: int
    table_id: int
    name: str
    sort: list[dict[str, Any]]
    filters: dict[str, Any]
    hidden_column_ids: list[int]
    frozen_count: int
    widths: dict[str, int]
    created_at: datetime


class RowOut(Out):
    id: int
    position: int = Field(description="0-based position in the order read (the table's own order for one row).")
    values: dict[str, CellValue] = Field(
        description="Cells keyed by column id: numbers as JSON numbers, dates as ISO 8601, multi select as arrays."
    )


class RowsCreatedOut(Out):
    count: int
    ids: list[int] = Field(description="Ids of the new rows, in the order sent.")


class Pagination(Out):
    total: int = Field(description="Rows in the table, or in the view after its filters.")
    start: int
    limit: int
    next_cursor: int | None = Field(description="Pass as ?after= for the next page; null on the last page.")


class PageMeta(Out):
    pagination: Pagination
