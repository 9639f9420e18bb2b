"""Tables over the JSON API: tables, columns, rows (windows, cursors, bulk) and views of the caller's workspace.

Every object is looked up inside the token's workspace, so another workspace's ids answer 404.
Cells go out typed for their column: numbers as JSON numbers, dates and date-times as ISO 8601,
multi select as arrays, JSON columns as JSON.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any, Literal

from morket.api.routing import Principal, WithMeta, api_route
from morket.api.schemas import DeletedOut
from morket.core.errors import NotFound, ValidationFailed
from morket.extensions import db
from morket.tables import column_service, schemas, service
from morket.tables.cells import CellError, parse_cell
from morket.tables.models import Column, Table, View
from morket.tables.service import MAX_REPORTED_CELL_ERRORS, WindowRow

TABLES, COLUMNS, ROWS, VIEWS = "Tables", "Columns", "Rows", "Views"
# Longer digit strings are names: no column id has more digits than a bigint.
_MAX_ID_DIGITS = 19
_JSON_TYPES = frozenset({"json", "enrichment"})


def _table(principal: Principal, table_id: int, lock: Literal["share", "update"] | None = None) -> Table:
    return service.get_table_or_404(principal.workspace, table_id, lock=lock)


def _table_out(table: Table) -> schemas.TableOut:
    return schemas.TableOut(
        id=table.id,
        name=table.name,
        folder=table.folder,
        row_count=table.row_count,
        created_at=table.created_at,
        columns=[schemas.ColumnOut.model_validate(c) for c in table.live_columns],
    )


def _json_value(value: Any) -> Any:
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat()
    if isinstance(value, date):
        return value.isoformat()
    return value


def _row_out(table: Table, row: WindowRow) -> schemas.RowOut:
    return schemas.RowOut(
        id=row.id,
        position=row.position,
        values={str(column_id): _json_value(v) for column_id, v in row.values(table).items()},
    )


def _resolve(table: Table, key: str) -> Column | None:
    """Find a live column by id (digits) or by name, exact first, then ignoring case."""
    live = table.live_columns
    if key.isascii() and key.isdigit() and len(key) <= _MAX_ID_DIGITS:
        found = next((c for c in live if c.id == int(key)), None)
        if found is not None:
            return found
    return next((c for c in live if c.name == key), None) or next(
        (c for c in live if c.name.casefold() == key.casefold()), None
    )


def _check_cells(table: Table, values: Mapping[str, Any], prefix: str, errors: dict[str, list[str]]) -> dict[int, Any]:
    """Return the cells keyed by column id, adding a message per bad key or value to ``errors``."""
    cells: dict[int, Any] = {}
    for key, raw in values.items():
        field = f"{prefix}{key}"
        column = _resolve(table, key)
        if column is None:
            errors[field] = [f"No column “{key[:60]}” in this table."]
            continue
        if column.id in cells:
            errors[field] = [f"The column “{column.name}” is given twice."]
            continue
        if column.type in _JSON_TYPES and isinstance(raw, str) and raw.strip():
            # The API carries JSON as JSON: a string is a JSON string, not JSON text to parse (as the grid does).
            raw = json.dumps(raw)
        try:
            parse_cell(column.type, column.config, raw)
        except CellError as exc:
            errors[field] = [str(exc)]
            continue
        cells[column.id] = raw
    return cells


def _refuse(errors: dict[str, list[str]], outcome: str) -> ValidationFailed:
    count = len(errors)
    shown = dict(list(errors.items())[:MAX_REPORTED_CELL_ERRORS])
    first_key, first = next(iter(shown.items()))
    return ValidationFailed(
        f"{count} cell{'s' if count != 1 else ''} could not be saved; {outcome} (first: {first_key}: {first[0]}).",
        fields=shown,
    )


# --- tables ----------------------------------------------------------------------------------------


@api_route(
    "/tables",
    "GET",
    summary="List the workspace's tables",
    tag=TABLES,
    permission="tables.view",
    response=list[schemas.TableSummaryOut],
)
def list_tables(principal: Principal) -> list[schemas.TableSummaryOut]:
    """Every table of the workspace, grouped by folder, then by name."""
    return [schemas.TableSummaryOut.model_validate(t) for t in service.list_tables(principal.workspace)]


@api_route(
    "/tables",
    "POST",
    summary="Create a table",
    tag=TABLES,
    permission="tables.manage",
    body=schemas.TableCreate,
    response=schemas.TableOut,
    status=201,
)
def create_table(principal: Principal, body: schemas.TableCreate) -> schemas.TableOut:
    """Create a table, optionally with typed columns; it starts with one view, "Grid view"."""
    table = service.create_table(
        principal.workspace,
        principal.user,
        body.name,
        folder=body.folder,
        columns=[c.model_dump() for c in body.columns],
    )
    out = _table_out(table)
    db.session.commit()
    return out


@api_route(
    "/tables/<int:table_id>",
    "GET",
    summary="Get a table and its columns",
    tag=TABLES,
    permission="tables.view",
    response=schemas.TableOut,
)
def get_table(principal: Principal, table_id: int) -> schemas.TableOut:
    """The table with its live columns in display order."""
    return _table_out(_table(principal, table_id))


@api_route(
    "/tables/<int:table_id>",
    "PATCH",
    summary="Rename a table",
    tag=TABLES,
    permission="tables.manage",
    body=schemas.TableUpdate,
    response=schemas.TableOut,
)
def rename_table(principal: Principal, body: schemas.TableUpdate, table_id: int) -> schemas.TableOut:
    """Give the table a new name."""
    table = service.rename_table(principal.workspace, principal.user, _table(principal, table_id, "update"), body.name)
    out = _table_out(table)
    db.session.commit()
    return out


@api_route(
    "/tables/<int:table_id>",
    "DELETE",
    summary="Delete a table",
    tag=TABLES,
    permission="tables.manage",
    response=DeletedOut,
)
def delete_table(principal: Principal, table_id: int) -> DeletedOut:
    """Delete the table with its rows, columns and views. This cannot be undone."""
    service.delete_table(principal.workspace, principal.user, _table(principal, table_id))
    out = DeletedOut(id=table_id)
    db.session.commit()
    return out


# --- columns ---------------------------------------------------------------------------------------


@api_route(
    "/tables/<int:table_id>/columns",
    "GET",
    summary="List a table's columns",
    tag=COLUMNS,
    permission="tables.view",
    response=list[schemas.ColumnOut],
)
def list_columns(principal: Principal, table_id: int) -> list[schemas.ColumnOut]:
    """Live columns in display order."""
    return [schemas.ColumnOut.model_validate(c) for c in _table(principal, table_id).live_columns]


@api_route(
    "/tables/<int:table_id>/columns",
    "POST",
    summary="Add a column",
    tag=COLUMNS,
    permission="tables.manage",
    body=schemas.ColumnCreate,
    response=schemas.ColumnOut,
    status=201,
)
def add_column(principal: Principal, body: schemas.ColumnCreate, table_id: int) -> schemas.ColumnOut:
    """Add a typed column at the end; names are unique in a table, ignoring case. A formula is computed in a job."""
    actor = principal.user
    column, _ = column_service.add_table_column(
        principal.workspace,
        actor,
        _table(principal, table_id, "update"),
        body.name,
        body.type,
        config=body.config,
        record=actor is not None,
    )
    out = schemas.ColumnOut.model_validate(column)
    db.session.commit()
    return out


@api_route(
    "/tables/<int:table_id>/columns/<int:column_id>",
    "PATCH",
    summary="Rename a column or change a lookup's settings",
    tag=COLUMNS,
    permission="tables.manage",
    body=schemas.ColumnUpdate,
    response=schemas.ColumnOut,
)
def rename_column(principal: Principal, body: schemas.ColumnUpdate, table_id: int, column_id: int) -> schemas.ColumnOut:
    """Give the column a new name (its cells and id stay the same), and/or a lookup column new settings."""
    if body.name is None and body.config is None:
        raise ValidationFailed("Send a name, or a lookup's config.", fields={"name": ["name or config required"]})
    table = _table(principal, table_id, "update")
    column = column_service.get_column_or_404(table, column_id)
    if body.name is not None:
        column = service.rename_column(principal.workspace, principal.user, table, column_id, body.name)
    if body.config is not None:
        column, _ = column_service.set_lookup(principal.workspace, principal.user, table, column_id, body.config)
    out = schemas.ColumnOut.model_validate(column)
    db.session.commit()
    return out


@api_route(
    "/tables/<int:table_id>/columns/<int:column_id>",
    "DELETE",
    summary="Delete a column",
    tag=COLUMNS,
    permission="tables.manage",
    response=DeletedOut,
)
def delete_column(principal: Principal, table_id: int, column_id: int) -> DeletedOut:
    """Delete the column and its cells from every view."""
    service.delete_column(principal.workspace, principal.user, _table(principal, table_id, "update"), column_id)
    out = DeletedOut(id=column_id)
    db.session.commit()
    return out


# --- rows ------------------------------------------------------------------------------------------


@api_route(
    "/tables/<int:table_id>/rows",
    "GET",
    summary="List rows by window or cursor",
    tag=ROWS,
    permission="tables.view",
    query=schemas.RowsQuery,
    meta=schemas.PageMeta,
    response=list[schemas.RowOut],
)
def list_rows(principal: Principal, query: schemas.RowsQuery, table_id: int) -> WithMeta:
    """Rows in the table's order, or a view's: a window from ``start``, or the page after the cursor ``after``.

    Positions are dense (0, 1, 2, ...) so both read an index range at any depth; ``meta.pagination``
    holds the total and the next cursor.
    """
    workspace, actor = principal.workspace, principal.user
    table = _table(principal, table_id)
    view: View | None = None
    if query.view is not None:
        view = service.get_view_or_404(workspace, table, query.view)
    start = query.after + 1 if query.after is not None else query.start or 0
    rows = service.read_window(workspace, actor, table, view, start, query.limit)
    total = service.count_rows(workspace, actor, table, view)
    last = rows[-1].position if rows else None
    pagination = schemas.Pagination(
        total=total,
        start=start,
        limit=query.limit,
        next_cursor=last if last is not None and last + 1 < total else None,
    )
    # Built before the commit, which expires the table: it may be gone or changed by then.
    out = WithMeta([_row_out(table, r) for r in rows], {"pagination": pagination.model_dump()})
    # A sorted or filtered view's order may have been built by this read: keep it for the next one.
    db.session.commit()
    return out


@api_route(
    "/tables/<int:table_id>/rows/<int:row_id>",
    "GET",
    summary="Get one row",
    tag=ROWS,
    permission="tables.view",
    response=schemas.RowOut,
)
def get_row(principal: Principal, table_id: int, row_id: int) -> schemas.RowOut:
    """One row with every live cell; its position is in the table's own order."""
    table = _table(principal, table_id)
    return _row_out(table, service.get_row(principal.workspace, principal.user, table, row_id))


@api_route(
    "/tables/<int:table_id>/rows",
    "POST",
    summary="Add one row",
    tag=ROWS,
    permission="tables.edit",
    body=schemas.RowCreate,
    response=schemas.RowOut,
    status=201,
)
def create_row(principal: Principal, body: schemas.RowCreate, table_id: int) -> schemas.RowOut:
    """Append a row; cells are keyed by column id or name, and every bad cell is named in ``error.fields``."""
    workspace, actor = principal.workspace, principal.user
    table = _table(principal, table_id, "update")
    errors: dict[str, list[str]] = {}
    cells = _check_cells(table, body.root, "", errors)
    if errors:
        raise _refuse(errors, "the row was not added")
    (row_id,) = service.insert_rows(workspace, actor, table, [cells])
    row = service.get_row(workspace, actor, table, row_id)
    out = _row_out(table, row)
    db.session.commit()
    return out


@api_route(
    "/tables/<int:table_id>/rows/bulk",
    "POST",
    summary=f"Add up to {schemas.MAX_BULK_ROWS:,} rows at once",
    tag=ROWS,
    permission="tables.edit",
    body=schemas.RowsBulkCreate,
    response=schemas.RowsCreatedOut,
    status=201,
    description=(
        f"Append 1 to {schemas.MAX_BULK_ROWS:,} rows in one call, all or nothing: when any cell is bad, nothing is "
        "added and error.fields names each one as rows[<index>].<column> (the first 50). The body is at most "
        "1 MB; send larger loads in several calls."
    ),
)
def bulk_create_rows(principal: Principal, body: schemas.RowsBulkCreate, table_id: int) -> schemas.RowsCreatedOut:
    """Append many rows at once, all or nothing."""
    table = _table(principal, table_id, "update")
    errors: dict[str, list[str]] = {}
    rows = [_check_cells(table, values, f"rows[{i}].", errors) for i, values in enumerate(body.rows)]
    if errors:
        raise _refuse(errors, "no rows were added")
    ids = service.insert_rows(principal.workspace, principal.user, table, rows)
    out = schemas.RowsCreatedOut(count=len(ids), ids=ids)
    db.session.commit()
    return out


@api_route(
    "/tables/<int:table_id>/rows/<int:row_id>",
    "PATCH",
    summary="Change cells of a row",
    tag=ROWS,
    permission="tables.edit",
    body=schemas.RowValues,
    response=schemas.RowOut,
)
def update_row(principal: Principal, body: schemas.RowValues, table_id: int, row_id: int) -> schemas.RowOut:
    """Set the cells sent (keyed by column id or name) and leave the others; all are saved or none."""
    workspace, actor = principal.workspace, principal.user
    table = _table(principal, table_id, "share")
    service.get_row(workspace, actor, table, row_id)
    errors: dict[str, list[str]] = {}
    cells = _check_cells(table, body.root, "", errors)
    if errors:
        raise _refuse(errors, "the row was not changed")
    for column_id, raw in cells.items():
        service.update_cell(workspace, actor, table, row_id, column_id, raw)
    row = service.get_row(workspace, actor, table, row_id)
    out = _row_out(table, row)
    db.session.commit()
    return out


@api_route(
    "/tables/<int:table_id>/rows/<int:row_id>",
    "DELETE",
    summary="Delete a row",
    tag=ROWS,
    permission="tables.edit",
    response=DeletedOut,
)
def delete_row(principal: Principal, table_id: int, row_id: int) -> DeletedOut:
    """Delete the row; the rows after it move up one position."""
    if not service.delete_rows(principal.workspace, principal.user, _table(principal, table_id, "update"), [row_id]):
        raise NotFound("That row no longer exists.")
    out = DeletedOut(id=row_id)
    db.session.commit()
    return out


# --- views -----------------------------------------------------------------------------------------


@api_route(
    "/tables/<int:table_id>/views",
    "GET",
    summary="List a table's views",
    tag=VIEWS,
    permission="tables.view",
    response=list[schemas.ViewOut],
)
def list_views(principal: Principal, table_id: int) -> list[schemas.ViewOut]:
    """Saved views, oldest first."""
    views = service.list_views(principal.workspace, _table(principal, table_id))
    return [schemas.ViewOut.model_validate(v) for v in views]


@api_route(
    "/tables/<int:table_id>/views",
    "POST",
    summary="Create a view",
    tag=VIEWS,
    permission="tables.manage",
    body=schemas.ViewCreate,
    response=schemas.ViewOut,
    status=201,
)
def create_view(principal: Principal, body: schemas.ViewCreate, table_id: int) -> schemas.ViewOut:
    """Save a sort (column_id, dir), a filter group, hidden columns, frozen columns and widths under a name."""
    fields = body.model_dump(exclude_unset=True, exclude={"name"})
    table = _table(principal, table_id, "share")
    view = service.create_view(principal.workspace, principal.user, table, body.name, **fields)
    out = schemas.ViewOut.model_validate(view)
    db.session.commit()
    return out


@api_route(
    "/tables/<int:table_id>/views/<int:view_id>",
    "PATCH",
    summary="Change a view",
    tag=VIEWS,
    permission="tables.manage",
    body=schemas.ViewUpdate,
    response=schemas.ViewOut,
)
def update_view(principal: Principal, body: schemas.ViewUpdate, table_id: int, view_id: int) -> schemas.ViewOut:
    """Change the fields sent and leave the others; a new sort or filter reorders the view on its next read."""
    workspace, actor = principal.workspace, principal.user
    table = _table(principal, table_id, "share")
    view = service.get_view_or_404(workspace, table, view_id)
    view = service.update_view(workspace, actor, table, view, **body.model_dump(exclude_unset=True))
    out = schemas.ViewOut.model_validate(view)
    db.session.commit()
    return out


@api_route(
    "/tables/<int:table_id>/views/<int:view_id>",
    "DELETE",
    summary="Delete a view",
    tag=VIEWS,
    permission="tables.manage",
    response=DeletedOut,
)
def delete_view(principal: Principal, table_id: int, view_id: int) -> DeletedOut:
    """Delete the saved view; rows are not touched."""
    workspace = principal.workspace
    table = _table(principal, table_id, "share")
    service.delete_view(workspace, principal.user, table, service.get_view_or_404(workspace, table, view_id))
    out = DeletedOut(id=view_id)
    db.session.commit()
    return out
