"""A view's sort and filters: validated when saved, compiled to SQL with bound parameters only.

Filters are ``{"op": "and"|"or", "conditions": [...]}`` where a condition is either a nested group
of the same shape or ``{"column_id": id, "operator": name, "value": ...}``; the ``search``
operator takes no column and looks through every text-like column. Values are parsed with the
column's own type (``cells.parse_cell``), so a date filter compares dates and a number filter
numbers; user text only ever reaches PostgreSQL as a bound parameter.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql as pg

from morket.core.errors import ValidationFailed
from morket.tables.cells import CellError, check_characters, parse_cell
from morket.tables.hooks import CELL_STATE_LABELS
from morket.tables.storage import Storage

MAX_SORT_KEYS = 5
MAX_CONDITIONS = 50
MAX_DEPTH = 3

# Lookups hold text (a count too, as its digits): filtered, searched and sorted as text.
TEXT_LIKE = frozenset({"text", "long_text", "email", "url", "phone", "domain", "single_select", "ai", "lookup"})
NUMERIC = frozenset({"number", "currency", "percent"})
TEMPORAL = frozenset({"date", "datetime"})

_EMPTINESS = ("is_empty", "is_not_empty")
OPERATORS: dict[str, tuple[str, ...]] = {
    **{t: ("equals", "not_equals", "contains", "not_contains", "starts_with", *_EMPTINESS) for t in TEXT_LIKE},
    "single_select": ("equals", "not_equals", "any_of", *_EMPTINESS),
    **{t: ("equals", "not_equals", "gt", "gte", "lt", "lte", "between", *_EMPTINESS) for t in NUMERIC | TEMPORAL},
    "checkbox": ("is_true", "is_false"),
    "multi_select": ("contains", "any_of", *_EMPTINESS),
    "json": ("contains", *_EMPTINESS),
    "enrichment": ("contains", "state_is", *_EMPTINESS),
    "formula": _EMPTINESS,
}
_NO_VALUE = frozenset({"is_empty", "is_not_empty", "is_true", "is_false"})


def _like_escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def validate_sort(sort: Any, types: dict[int, str]) -> list[dict[str, Any]]:
    """Return a clean sort list or raise ValidationFailed naming the problem."""
    if sort is None:
        return []
    if not isinstance(sort, list) or len(sort) > MAX_SORT_KEYS:
        raise ValidationFailed(f"Sort by at most {MAX_SORT_KEYS} columns.", fields={"sort": ["too many keys"]})
    clean: list[dict[str, Any]] = []
    for key in sort:
        if not isinstance(key, dict):
            raise ValidationFailed("Each sort key needs a column and a direction.", fields={"sort": ["bad key"]})
        column_id = _column_id(key.get("column_id"), types, "sort")
        direction = key.get("dir", "asc")
        if direction not in ("asc", "desc"):
            raise ValidationFailed("Sort direction is asc or desc.", fields={"sort": ["bad direction"]})
        clean.append({"column_id": column_id, "dir": direction})
    return clean


def _column_id(raw: Any, types: dict[int, str], field: str) -> int:
    if isinstance(raw, bool) or not isinstance(raw, int | str) or not str(raw).isdigit():
        raise ValidationFailed("Pick a column.", fields={field: ["missing column"]})
    column_id = int(raw)
    if column_id not in types:
        raise ValidationFailed("That column is not in this table.", fields={field: ["unknown column"]})
    return column_id


def validate_filters(filters: Any, types: dict[int, str], configs: dict[int, dict[str, Any]]) -> dict[str, Any]:
    """Return a clean filter group or raise ValidationFailed naming the problem."""
    if not filters:
        return {}
    counter = [0]
    return _validate_group(filters, types, configs, 1, counter)


def _validate_group(
    group: Any, types: dict[int, str], configs: dict[int, dict[str, Any]], depth: int, counter: list[int]
) -> dict[str, Any]:
    if not isinstance(group, dict) or group.get("op", "and") not in ("and", "or"):
        raise ValidationFailed("A filter group joins its conditions with and or or.", fields={"filters": ["bad group"]})
    if depth > MAX_DEPTH:
        raise ValidationFailed(f"Filters nest at most {MAX_DEPTH} levels.", fields={"filters": ["too deep"]})
    conditions = group.get("conditions") or []
    if not isinstance(conditions, list):
        raise ValidationFailed("Filter conditions must be a list.", fields={"filters": ["bad conditions"]})
    clean: list[dict[str, Any]] = []
    for cond in conditions:
        counter[0] += 1
        if counter[0] > MAX_CONDITIONS:
            raise ValidationFailed(f"At most {MAX_CONDITIONS} filter conditions.", fields={"filters": ["too many"]})
        if isinstance(cond, dict) and "conditions" in cond:
            clean.append(_validate_group(cond, types, configs, depth + 1, counter))
        else:
            clean.append(_validate_condition(cond, types, configs))
    return {"op": group.get("op", "and"), "conditions": clean}


def _validate_condition(cond: Any, types: dict[int, str], configs: dict[int, dict[str, Any]]) -> dict[str, Any]:
    if not isinstance(cond, dict):
        raise ValidationFailed("A filter condition needs a column and an operator.", fields={"filters": ["bad"]})
    operator = cond.get("operator")
    if operator == "search":
        value = cond.get("value")
        if not isinstance(value, str) or not value.strip() or len(value) > 200:
            raise ValidationFailed("Search for 1 to 200 characters of text.", fields={"filters": ["bad search"]})
        try:
            check_characters(value)
        except CellError as exc:
            raise ValidationFailed(f"Search: {exc}", fields={"filters": [str(exc)]}) from exc
        return {"operator": "search", "value": value.strip()}
    column_id = _column_id(cond.get("column_id"), types, "filters")
    column_type = types[column_id]
    if operator not in OPERATORS.get(column_type, ()):
        allowed = ", ".join(OPERATORS.get(column_type, ()))
        raise ValidationFailed(
            f"“{operator}” does not apply to a {column_type} column (use one of: {allowed}).",
            fields={"filters": ["bad operator"]},
        )
    clean: dict[str, Any] = {"column_id": column_id, "operator": operator}
    if operator in _NO_VALUE:
        return clean
    raw = cond.get("value")
    if operator == "state_is":
        clean["value"] = _cell_state_value(raw)
        return clean
    try:
        if operator == "between":
            if not isinstance(raw, list | tuple) or len(raw) != 2:
                raise CellError("Between needs two values.")
            low, high = (_filter_value(column_type, configs[column_id], v) for v in raw)
            clean["value"] = [low, high]
        elif operator == "any_of":
            if not isinstance(raw, list | tuple) or not raw or len(raw) > 100:
                raise CellError("Pick between 1 and 100 values.")
            clean["value"] = [_filter_value("single_select", configs[column_id], v) for v in raw]
        elif operator in ("contains", "not_contains", "starts_with"):
            if not isinstance(raw, str) or not raw or len(raw) > 200:
                raise CellError("Enter 1 to 200 characters of text.")
            check_characters(raw)
            clean["value"] = raw
        else:
            clean["value"] = _filter_value(column_type, configs[column_id], raw)
    except CellError as exc:
        raise ValidationFailed(f"Filter value: {exc}", fields={"filters": [str(exc)]}) from exc
    return clean


def _cell_state_value(raw: Any) -> str:
    """An enrichment cell state named by its key (no_data) or its label ("No data found")."""
    text = raw.strip().casefold() if isinstance(raw, str) else ""
    for state, label in CELL_STATE_LABELS.items():
        if text in (state, state.replace("_", " "), label.casefold()):
            return state
    names = ", ".join(label.casefold() for label in CELL_STATE_LABELS.values())
    raise ValidationFailed(f"Enrichment state is one of: {names}.", fields={"filters": ["unknown state"]})


def _filter_value(column_type: str, config: dict[str, Any], raw: Any) -> Any:
    """Parse a filter operand with the column's type; stored JSON-friendly (dates as ISO text)."""
    value = parse_cell(column_type, config, raw)
    if value is None:
        raise CellError("Enter a value to compare with (or use is empty).")
    if hasattr(value, "isoformat"):
        return value.isoformat()
    if column_type in NUMERIC:
        return str(value)
    return value


# --- compiling -------------------------------------------------------------------------------------


def compile_sort(sort: list[dict[str, Any]], storage: Storage) -> list[Any]:
    """Return ORDER BY expressions (empty cells last in both directions)."""
    order = []
    for key in sort:
        column = storage.columns.get(key["column_id"])
        if column is None:
            continue
        order.append(column.desc().nulls_last() if key["dir"] == "desc" else column.asc().nulls_last())
    return order


def compile_filters(filters: dict[str, Any], storage: Storage) -> Any | None:
    """Return a WHERE expression for a validated filter group, or None for no filter."""
    if not filters or not filters.get("conditions"):
        return None
    return _compile_group(filters, storage)


def _compile_group(group: dict[str, Any], storage: Storage) -> Any:
    parts = []
    for cond in group["conditions"]:
        part = _compile_group(cond, storage) if "conditions" in cond else _compile_condition(cond, storage)
        if part is not None:
            parts.append(part)
    if not parts:
        return sa.true()
    return sa.and_(*parts) if group.get("op", "and") == "and" else sa.or_(*parts)


def _typed(column_type: str, value: Any) -> Any:
    if column_type in NUMERIC:
        return sa.cast(sa.literal(value, sa.Text()), sa.Numeric())
    if column_type == "date":
        return sa.cast(sa.literal(value, sa.Text()), sa.Date())
    if column_type == "datetime":
        return sa.cast(sa.literal(value, sa.Text()), sa.DateTime(timezone=True))
    return sa.literal(value, sa.Text())


def _compile_condition(cond: dict[str, Any], storage: Storage) -> Any:  # one branch per operator
    operator = cond["operator"]
    if operator == "search":
        return search_clause(cond["value"], storage)
    column = storage.columns.get(cond["column_id"])
    if column is None:
        # A deleted column's condition matches nothing rather than silently widening the view.
        return sa.false()
    column_type = storage.types[cond["column_id"]]
    value = cond.get("value")
    if operator == "is_empty":
        if column_type in TEXT_LIKE:
            return sa.or_(column.is_(None), column == "")
        return column.is_(None)
    if operator == "is_not_empty":
        if column_type in TEXT_LIKE:
            return sa.and_(column.is_not(None), column != "")
        return column.is_not(None)
    if operator == "state_is":
        state = sa.func.jsonb_extract_path_text(storage.rows.c.cell_state, str(cond["column_id"]), "status")
        return state == sa.literal(value, sa.Text())
    if operator == "is_true":
        return column.is_(True)
    if operator == "is_false":
        return column.is_not(True)
    if column_type == "multi_select":
        wanted = [value] if operator == "contains" else list(value)
        return column.op("&&")(sa.cast(sa.literal(wanted, pg.ARRAY(sa.Text())), pg.ARRAY(sa.Text())))
    if column_type in ("json", "enrichment"):
        return sa.cast(column, sa.Text()).ilike("%" + _like_escape(value) + "%", escape="\\")
    if operator == "contains":
        return column.ilike("%" + _like_escape(value) + "%", escape="\\")
    if operator == "not_contains":
        return sa.or_(column.is_(None), sa.not_(column.ilike("%" + _like_escape(value) + "%", escape="\\")))
    if operator == "starts_with":
        return column.ilike(_like_escape(value) + "%", escape="\\")
    if operator == "any_of":
        # One array parameter rather than an expanding IN list: the order build sends its SQL
        # through the driver as compiled, and a single bound array compiles the same every time.
        return column == sa.any_(sa.cast(sa.literal(list(value), pg.ARRAY(sa.Text())), pg.ARRAY(sa.Text())))
    if operator in ("equals", "not_equals") and column_type in TEXT_LIKE:
        match = sa.func.lower(column) == sa.func.lower(sa.literal(value, sa.Text()))
        return match if operator == "equals" else sa.or_(column.is_(None), sa.not_(match))
    if operator == "between":
        return column.between(_typed(column_type, value[0]), _typed(column_type, value[1]))
    operand = _typed(column_type, value)
    if operator == "equals":
        return column == operand
    if operator == "not_equals":
        return column.is_distinct_from(operand)
    return {"gt": column > operand, "gte": column >= operand, "lt": column < operand, "lte": column <= operand}[
        operator
    ]


def search_clause(query: str, storage: Storage) -> Any:
    """Match rows where any text-like column, or the value an enrichment cell shows, contains
    ``query`` (case-insensitive)."""
    pattern = "%" + _like_escape(query) + "%"
    parts = [
        storage.columns[cid].ilike(pattern, escape="\\") for cid, kind in storage.types.items() if kind in TEXT_LIKE
    ]
    parts += [
        storage.columns[cid]["value"].astext.ilike(pattern, escape="\\")
        for cid, kind in storage.types.items()
        if kind == "enrichment"
    ]
    return sa.or_(*parts) if parts else sa.false()
