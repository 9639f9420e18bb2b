"""Formula cells computed in SQL: check a formula against its table, recompute the rows it reads.

Formulas are materialised: their text lives in the column's storage, their per-cell errors in
``cell_state``. Writes that change cells call ``refresh_formula_rows`` for the rows they touched
(one UPDATE recomputes every formula of those rows); a new or changed formula recomputes every row
in a job, batch by batch (``recompute_formulas``). Views sorted or filtered on a formula column
are marked stale when its values change.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy import select

from morket.core.errors import ValidationFailed
from morket.core.types import Workspace
from morket.extensions import db
from morket.tables import formula, storage
from morket.tables.access import check_owned, mark_views_stale
from morket.tables.models import Table


def formula_sources(table: Table, store: storage.Storage) -> tuple[dict[str, formula.Source], dict[int, str]]:
    """Return what a formula of ``table`` may read (live columns by name) and its formulas by column id."""
    live = table.live_columns
    sources = {c.name: formula.Source(c.id, c.name, c.type, c.config, store.columns[c.id]) for c in live}
    formulas = {c.id: c.config.get("expression", "") for c in live if c.type == "formula"}
    return sources, formulas


def check_formula(
    table: Table, expression: str, *, column_id: int | None = None, types: Mapping[int, str] | None = None
) -> str:
    """Return the formula's result type or raise ValidationFailed with the position of the problem.

    ``types`` overrides column types (to check a retype before it happens).
    """
    store = storage.storage_for(table)
    sources, formulas = formula_sources(table, store)
    if types:
        sources = {n: _with_type(s, types) for n, s in sources.items()}
    if column_id is not None:
        formulas[column_id] = expression
    try:
        return formula.compile_formula(expression, sources, formulas, self_id=column_id).result_type
    except formula.FormulaError as exc:
        raise ValidationFailed(f"Formula: {exc}", fields={"expression": [str(exc)]}) from exc


def _with_type(source: formula.Source, types: Mapping[int, str]) -> formula.Source:
    if source.id not in types:
        return source
    return formula.Source(source.id, source.name, types[source.id], source.config, source.column)


def _formula_update(table: Table, where: Any) -> sa.Update | None:
    store = storage.storage_for(table)
    sources, formulas = formula_sources(table, store)
    if not formulas:
        return None
    rows = store.rows
    computed: list[Any] = [rows.c.id]
    for column_id, expression in formulas.items():
        compiled = formula.compile_formula(expression, sources, formulas, self_id=column_id)
        computed += [compiled.raw_value.label(f"v_{column_id}"), compiled.raw_error.label(f"e_{column_id}")]
    # Each formula is evaluated once per row in the subquery; the outer UPDATE only files the results.
    fresh = select(*computed).where(where).subquery("fresh")
    values: dict[str, Any] = {}
    state: Any = rows.c.cell_state
    for column_id in formulas:
        value, error = formula.finish(fresh.c[f"v_{column_id}"], fresh.c[f"e_{column_id}"])
        values[store.columns[column_id].name] = value
        state = formula.error_state(column_id, error, state)
    values["cell_state"] = state
    return sa.update(rows).where(rows.c.id == fresh.c.id).values(values)


def _formula_inputs(table: Table) -> set[int]:
    store = storage.storage_for(table)
    sources, formulas = formula_sources(table, store)
    used: set[int] = set()
    for column_id, expression in formulas.items():
        try:
            used |= formula.compile_formula(expression, sources, formulas, self_id=column_id).used_column_ids
        except formula.FormulaError:
            continue
    return used


def refresh_formula_rows(
    workspace: Workspace, table: Table, row_ids: Sequence[int], changed: Iterable[int] | None = None
) -> int:
    """Recompute the formula cells of ``row_ids`` when a formula reads a changed column; return rows written."""
    check_owned(workspace, table)
    if not row_ids or not any(c.type == "formula" for c in table.live_columns):
        return 0
    if changed is not None and not set(changed) & _formula_inputs(table):
        return 0
    store = storage.storage_for(table)
    statement = _formula_update(table, store.rows.c.id.in_([int(i) for i in row_ids]))
    written = db.session.execute(statement).rowcount if statement is not None else 0
    if written:
        _mark_formulas_stale(workspace, table)
    return written


def _mark_formulas_stale(workspace: Workspace, table: Table) -> None:
    """Views sorted or filtered on a formula column reorder after its values changed."""
    mark_views_stale(workspace, table, {c.id for c in table.live_columns if c.type == "formula"})


def recompute_formulas(workspace: Workspace, table: Table, *, lo: int, hi: int) -> int:
    """Recompute every formula cell of the rows whose id is in (lo, hi]; return rows written."""
    check_owned(workspace, table)
    store = storage.storage_for(table)
    statement = _formula_update(table, sa.and_(store.rows.c.id > lo, store.rows.c.id <= hi))
    written = db.session.execute(statement).rowcount if statement is not None else 0
    if written:
        _mark_formulas_stale(workspace, table)
    return written
